"""What every usage-event transport is: the `Transport` protocol, its counters, and `NullTransport`.

Kept apart from the Kafka transport so that code which only needs the contract (tracking's
configuration, a service's own transport, the kill switch) does not read the sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from producers.wire import EventDraft
from schemas import UsageTrackingEvent

DEFAULT_CLOSE_TIMEOUT_SECONDS = 5.0


class Transport(Protocol):
    """Where tracked events go once built."""

    def emit(self, event: UsageTrackingEvent) -> None: ...

    def flush(self, timeout: float = 10.0) -> bool: ...

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT_SECONDS) -> None: ...

    def stats(self) -> TransportStats: ...


@dataclass(frozen=True, slots=True)
class TransportStats:
    """Counters of a transport since it was made.

    `delivered` were acknowledged by Kafka, `spooled` written to the local spool,
    `replayed` delivered later from the spool, `dropped` lost because the spool was full
    or an event could never fit in a Kafka message. `queued` are in memory right now.
    """

    delivered: int = 0
    spooled: int = 0
    replayed: int = 0
    dropped: int = 0
    queue_overflows: int = 0
    unreadable_spool_lines: int = 0
    queued: int = 0
    spool_bytes: int = 0
    spool_segments: int = 0
    broker_available: bool | None = None
    last_error: str | None = None
    publishing_disabled: bool = False


class NullTransport:
    """Publishes nothing: handlers and `UsageResponse` still see every event.

    What the kill switch (USAGE_TRACKING_DISABLED=1) and `destination=None` install.
    """

    accepts_drafts = True

    def __init__(self, *, disabled_by_kill_switch: bool = False) -> None:
        self._disabled = disabled_by_kill_switch
        self._discarded = 0

    def emit(self, event: UsageTrackingEvent | EventDraft) -> None:
        """Discard the event."""
        self._discarded += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Nothing to flush."""
        return True

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT_SECONDS) -> None:
        """Nothing to close."""

    def stats(self) -> TransportStats:
        """All zero; `publishing_disabled` says whether the kill switch did this."""
        return TransportStats(publishing_disabled=self._disabled)
