"""The Kafka transport's one publish in flight, and what its outcome does to the events.

One publish is in flight at a time. It normally settles in milliseconds; if it does not
within `stall_seconds`, the broker is taken as unavailable and new events go to the
spool, while the in-flight batch stays with aiokafka, which retries it until the broker
answers or fails it (then it is spooled too). Never handing the same events to two
places while both can deliver them is what keeps an outage free of duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from producers.broker_link import BrokerLink
from producers.delivery_ledger import DeliveryLedger
from producers.errors import EventTooLargeError
from producers.spool import ClaimedSegment, EventSpool
from producers.wire import EncodedEvent

if TYPE_CHECKING:
    from producers.publisher import KafkaPublisher

log = logging.getLogger("producers.transport")


@dataclass(slots=True)
class Inflight:
    """The one publish on its way: its task, its events, and the segment they came from."""

    task: asyncio.Task[Any]
    events: list[EncodedEvent]
    segment: ClaimedSegment | None
    started: float
    stall_reported: bool = False


class PublishSlot:
    """Starts, waits for and settles the publish in flight (see module docstring)."""

    def __init__(
        self,
        spool: EventSpool,
        ledger: DeliveryLedger,
        link: BrokerLink,
        spool_events: Callable[[Sequence[EncodedEvent]], None],
        on_settled: Callable[[], None],
    ) -> None:
        self._spool = spool
        self._ledger = ledger
        self._link = link
        self._spool_events = spool_events
        self._on_settled = on_settled
        self._lock = threading.Lock()
        self.current: Inflight | None = None

    def start(self, publisher: KafkaPublisher, events: list[EncodedEvent], segment: ClaimedSegment | None) -> None:
        """Publish the events (from `segment` when replaying the spool)."""
        task = asyncio.get_running_loop().create_task(publisher.publish_encoded(events))
        with self._lock:
            self.current = Inflight(task, events, segment, time.monotonic())

    async def wait(self, closing: bool, close_deadline: float) -> None:
        """Wait for the publish in flight, at most until it counts as stalled."""
        inflight = self.current
        if inflight is None:
            return
        remaining = inflight.started + self._link.stall_seconds - time.monotonic()
        if closing:
            remaining = min(remaining, close_deadline - time.monotonic())
        if remaining > 0:
            await asyncio.wait({inflight.task}, timeout=remaining)
        if not self.settle() and not inflight.stall_reported:
            inflight.stall_reported = True
            self._link.stalled(len(inflight.events))

    def settle(self) -> bool:
        """Account for the publish in flight if it finished; whether nothing is in flight now."""
        inflight = self.current
        if inflight is None:
            return True
        if not inflight.task.done():
            return False
        with self._lock:
            self.current = None
        error = None if inflight.task.cancelled() else inflight.task.exception()
        if error is None and not inflight.task.cancelled():
            self._succeeded(inflight)
        elif isinstance(error, EventTooLargeError):
            self._too_large(inflight, error)
        else:
            self._failed(inflight, error or asyncio.CancelledError())
        self._on_settled()
        return self.current is None

    def give_up(self) -> None:
        """Closing with a publish still stuck: spool its events (a late ack just makes a duplicate)."""
        inflight = self.current
        if inflight is None:
            return
        with self._lock:
            self.current = None
        inflight.task.cancel()
        if inflight.segment is not None:
            self._spool.release(inflight.segment)
        else:
            self._spool_events(inflight.events)
        self._on_settled()

    def take_unsettled(self) -> list[EncodedEvent]:
        """After the sender stopped: the new events still in flight (spooled ones stay in the spool)."""
        with self._lock:
            inflight, self.current = self.current, None
        return list(inflight.events) if inflight is not None and inflight.segment is None else []

    def _succeeded(self, inflight: Inflight) -> None:
        sent = inflight.task.result().events
        if inflight.segment is None:
            self._ledger.add(delivered=sent)
        else:
            self._ledger.add(replayed=sent)
            self._spool.delivered(inflight.segment)
            log.info("replayed %d spooled usage events to %s", sent, self._link.topic)
        self._link.answered()

    def _too_large(self, inflight: Inflight, error: EventTooLargeError) -> None:
        # Can never be sent, now or later: drop it alone, loudly, and send the rest.
        self._ledger.count_dropped(1, f"event {error.event_id} can never fit in a Kafka message: {error}")
        rest = [event for event in inflight.events if event.event_id != error.event_id]
        if inflight.segment is not None:
            self._spool.delivered(inflight.segment)
        if rest and self._link.publisher is not None:
            self.start(self._link.publisher, rest, segment=None)
        elif rest:
            self._spool_events(rest)

    def _failed(self, inflight: Inflight, error: BaseException) -> None:
        if inflight.segment is not None:
            self._spool.release(inflight.segment)
        else:
            self._spool_events(inflight.events)
        self._link.failed(error)
