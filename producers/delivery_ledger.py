"""What became of every event the Kafka transport took: counted, spooled, or logged as lost.

Shared by the caller's thread (a full queue spills to the spool there) and the sender
thread, so every counter changes under one lock. A loss is never silent: a full spool is
logged at once, then at most every `DROP_LOG_INTERVAL_SECONDS` with counts, and whatever
that interval held back is logged at close.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from producers.errors import SpoolError
from producers.spool import EventSpool
from producers.wire import EncodedEvent

log = logging.getLogger("producers.transport")

# A full spool is reported at once, then at most this often (with counts), not per event.
DROP_LOG_INTERVAL_SECONDS = 10.0


class DeliveryLedger:
    """The transport's counters and its writes to the spool. Thread-safe."""

    def __init__(self, spool: EventSpool) -> None:
        self.spool = spool
        self.lock = threading.Lock()
        self.delivered = 0
        self.spooled = 0
        self.replayed = 0
        self.dropped = 0
        self.overflows = 0
        self.unreadable = 0
        self._last_drop_log = 0.0
        self._drops_since_log = 0
        self._last_drop_reason = ""

    def counts(self) -> dict[str, Any]:
        """The counters, as `TransportStats` fields."""
        with self.lock:
            return dict(
                delivered=self.delivered,
                spooled=self.spooled,
                replayed=self.replayed,
                dropped=self.dropped,
                queue_overflows=self.overflows,
                unreadable_spool_lines=self.unreadable,
            )

    def add(self, *, delivered: int = 0, replayed: int = 0, overflows: int = 0, unreadable: int = 0) -> None:
        """Count settled events."""
        with self.lock:
            self.delivered += delivered
            self.replayed += replayed
            self.overflows += overflows
            self.unreadable += unreadable

    def spool_events(self, events: Sequence[EncodedEvent]) -> int:
        """Write the events to the spool; whatever does not fit is counted and logged as lost.

        Returns how many were stored.
        """
        try:
            stored = self.spool.append_lines([event.json + b"\n" for event in events])
        except SpoolError as exc:
            stored = 0
            reason = str(exc)
        else:
            reason = f"the spool at {self.spool.directory} is full ({self.spool.max_bytes} bytes)"
        with self.lock:
            self.spooled += stored
        if stored < len(events):
            self.count_dropped(len(events) - stored, reason)
        return stored

    def count_dropped(self, count: int, reason: str) -> None:
        """Count lost events; logged now, or with the next report the interval allows."""
        now = time.monotonic()
        with self.lock:
            self.dropped += count
            self._drops_since_log += count
            self._last_drop_reason = reason
            due = now - self._last_drop_log >= DROP_LOG_INTERVAL_SECONDS
            if due:
                reported, self._drops_since_log, self._last_drop_log = self._drops_since_log, 0, now
            total = self.dropped
        if due:
            _log_drops(reported, total, reason)

    def log_unreported_drops(self) -> None:
        """Closing: losses the log interval held back are reported now, so every loss is logged."""
        with self.lock:
            reported, self._drops_since_log = self._drops_since_log, 0
            total, reason = self.dropped, self._last_drop_reason
        if reported:
            _log_drops(reported, total, reason)


def _log_drops(count: int, total: int, reason: str) -> None:
    log.error(
        "LOST %d usage events (%d in total since start): %s. Raise USAGE_TRACKING_SPOOL_MAX_BYTES "
        "or bring Kafka back; these calls will not be billed",
        count,
        total,
        reason,
    )
