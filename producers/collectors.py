"""In-process listeners of tracked events: what `UsageResponse` and `BatchStats` are built on.

A listener sees every event reported inside the block that installed it — in that code,
the tasks it starts and the threads it hands its context to — whether or not events are
published anywhere. Listeners nest: an event reported inside a phase inside a job is seen
by both.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Protocol

from schemas import UsageTrackingEvent

log = logging.getLogger("producers.collectors")


class EventListener(Protocol):
    """Anything with `add(event)`; must be thread-safe, since threads may share it."""

    def add(self, event: UsageTrackingEvent) -> None: ...


_LISTENERS: contextvars.ContextVar[tuple[EventListener, ...]] = contextvars.ContextVar(
    "usage_event_listeners", default=()
)


@contextlib.contextmanager
def listening(listener: EventListener) -> Iterator[EventListener]:
    """Make `listener` see every event reported inside the block."""
    token = _LISTENERS.set((*_LISTENERS.get(), listener))
    try:
        yield listener
    finally:
        _LISTENERS.reset(token)


def listeners_in_force() -> bool:
    """Whether any listener would see an event reported here (if none, no event object is needed)."""
    return bool(_LISTENERS.get())


def notify_listeners(event: UsageTrackingEvent) -> None:
    """Hand `event` to every listener in force; a failing listener is logged, not raised."""
    for listener in _LISTENERS.get():
        try:
            listener.add(event)
        except Exception:  # noqa: BLE001 - a statistics bug must never break the tracked call
            log.exception("usage listener %r failed on event %s", listener, event.event_id)
