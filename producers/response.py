"""Usage beside the result (seed 000): `UsageResponse(data, usage)` for callers who want it inline.

The usage comes from the events tracked while the work ran — instrumented clients and
`track_llm_call` alike — so it is there even when publishing is disabled or not
configured. Errors are not wrapped: an exception from the work propagates unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, ParamSpec, TypeVar

from producers.collectors import listening
from producers.usage_mapping import ZERO_USAGE, add_usage
from schemas import Usage, UsageTrackingEvent

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class UsageResponse(Generic[T]):
    """A result and the token usage of the LLM calls that produced it.

    `usage` sums every call made while producing `data` (a tool loop's round trips
    included); `events` are those calls' events, in the order they finished.
    """

    data: T
    usage: Usage
    events: tuple[UsageTrackingEvent, ...] = ()

    def unwrap(self) -> T:
        """The result alone, for code that does not care about usage."""
        return self.data

    @property
    def requests(self) -> int:
        """How many LLM calls produced the result."""
        return len(self.events)


class UsageCollector:
    """Gathers the events reported inside a `collect_usage()` block (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[UsageTrackingEvent] = []
        self._usage = ZERO_USAGE

    def add(self, event: UsageTrackingEvent) -> None:
        """Count one event (called by the tracking machinery)."""
        with self._lock:
            self._events.append(event)
            self._usage = add_usage(self._usage, event.usage)

    @property
    def usage(self) -> Usage:
        """Summed usage of the events seen so far."""
        with self._lock:
            return self._usage

    @property
    def events(self) -> tuple[UsageTrackingEvent, ...]:
        """The events seen so far, in the order they were reported."""
        with self._lock:
            return tuple(self._events)

    def response(self, data: T) -> UsageResponse[T]:
        """`data` wrapped with the usage collected so far."""
        with self._lock:
            return UsageResponse(data=data, usage=self._usage, events=tuple(self._events))


@contextmanager
def collect_usage() -> Iterator[UsageCollector]:
    """Collect the usage of every LLM call tracked inside the block.

    A stream's event is reported when the stream ends, so consume streams inside the block.
    """
    with listening(UsageCollector()) as collector:
        yield collector  # type: ignore[misc]


def with_usage(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> UsageResponse[T]:
    """Run `function(*args, **kwargs)` and return its result with the usage it caused."""
    with collect_usage() as collector:
        data = function(*args, **kwargs)
    return collector.response(data)


async def with_usage_async(awaitable: Awaitable[T]) -> UsageResponse[T]:
    """Await `awaitable` and return its result with the usage it caused.

    `await with_usage_async(client.messages.create(...))`, or any coroutine of yours.
    """
    with collect_usage() as collector:
        data = await awaitable
    return collector.response(data)
