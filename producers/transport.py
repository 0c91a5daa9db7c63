"""Get events to Kafka without ever slowing down or breaking the service that emits them.

`KafkaTransport.emit(event)` appends to a bounded in-memory queue and returns: no lock,
no I/O, no wake-up on the caller's thread (a few hundred nanoseconds; see
benchmarks/emit_overhead.py). It takes a tracked call's `EventDraft` as well as a
`UsageTrackingEvent`. A background thread runs an asyncio loop that drains the queue
every `linger_seconds`, encodes the events (spot-checking drafts against the model) in
short slices that leave the GIL to the service's threads (`producers.sender_encoding`), packs
them into per-project batches (`producers.batching`, via `KafkaPublisher`: idempotent
producer, acks=all) and waits for the broker's acknowledgement.

When the broker cannot be reached, or does not acknowledge in time, the events go to the
local `EventSpool` and are replayed once the broker answers again; their `event_id`s do
not change, so a replay that overlaps a late acknowledgement is billed once. If the queue
is full, the caller's thread writes the event to the spool itself (rare, and still only a
local append). Only a full spool loses events, and that is logged as an error and counted
in `stats().dropped`.

At interpreter exit every live transport is closed: the queue is delivered if the broker
answers within the exit budget, otherwise written to the spool for the next run. A
SIGKILL can lose what was in memory (at most about one `linger_seconds` of events plus
one batch in flight).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from producers.broker_link import BrokerLink
from producers.delivery_ledger import DeliveryLedger
from producers.publish_slot import PublishSlot
from producers.sender_encoding import EncodingStage
from producers.spool import EventSpool
from producers.transport_base import DEFAULT_CLOSE_TIMEOUT_SECONDS, NullTransport, Transport, TransportStats
from producers.wire import EncodedEvent, EventDraft
from schemas import UsageTrackingEvent

if TYPE_CHECKING:
    from producers.kafka_security import KafkaSecurity

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT_SECONDS",
    "DEFAULT_QUEUE_MAX_EVENTS",
    "KafkaTransport",
    "NullTransport",
    "Transport",
    "TransportStats",
]

log = logging.getLogger("producers.transport")

DEFAULT_QUEUE_MAX_EVENTS = 50_000
DEFAULT_LINGER_SECONDS = 0.05
# Events sent per publish round trip; several Kafka messages of up to 1,000 events each.
DEFAULT_MAX_EVENTS_PER_PUBLISH = 5_000
DEFAULT_REQUEST_TIMEOUT_MS = 10_000
# A publish not acknowledged within this long means the broker is away, for now.
DEFAULT_STALL_SECONDS = 2.0
RECONNECT_INITIAL_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0
# Events of one full Kafka message: with fewer queued, the sender lingers before publishing.
_FULL_MESSAGE_EVENTS = 1000

class _FlushMarker:
    """Put in the queue by `flush()`: set once every event queued before it is settled."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class KafkaTransport:
    """The background Kafka transport (see module docstring). Thread-safe; fork-aware."""

    # Takes `EventDraft`s: tracked calls leave encoding and checking to the sender.
    accepts_drafts = True

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        spool: EventSpool,
        *,
        queue_max_events: int = DEFAULT_QUEUE_MAX_EVENTS,
        linger_seconds: float = DEFAULT_LINGER_SECONDS,
        max_events_per_publish: int = DEFAULT_MAX_EVENTS_PER_PUBLISH,
        request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
        reconnect_initial_seconds: float = RECONNECT_INITIAL_SECONDS,
        reconnect_max_seconds: float = RECONNECT_MAX_SECONDS,
        client_id: str = "usage-tracking",
        security: KafkaSecurity | None = None,
    ) -> None:
        if queue_max_events < 1:
            raise ValueError(f"queue_max_events must be positive, got {queue_max_events}")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.spool = spool
        self._queue_max = queue_max_events
        self._linger = linger_seconds
        self._max_per_publish = max_events_per_publish
        self._stall_seconds = stall_seconds
        self._link_options = dict(
            request_timeout_ms=request_timeout_ms,
            stall_seconds=stall_seconds,
            reconnect_initial_seconds=reconnect_initial_seconds,
            reconnect_max_seconds=reconnect_max_seconds,
            client_id=client_id,
            security=security,
        )
        self._reset_runtime_state()
        _LIVE_TRANSPORTS.add(self)
        if spool.has_pending():
            # Left by an earlier run (an outage, a crash): deliver it even if this run is quiet.
            self._start_sender()

    def _reset_runtime_state(self) -> None:
        # deque.append and len are atomic under the GIL: the caller's fast path needs no lock.
        self._queue: collections.deque[UsageTrackingEvent | tuple[Any, ...] | _FlushMarker] = collections.deque()
        self._encoding = EncodingStage()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._closed = False
        self._close_deadline = 0.0
        self._held_markers: list[_FlushMarker] = []
        self._spool_may_hold_events = True
        self._ledger = DeliveryLedger(self.spool)
        self._link = BrokerLink(self.bootstrap_servers, self.topic, self.spool, **self._link_options)
        self._slot = PublishSlot(self.spool, self._ledger, self._link, self._spool_events, self._release_markers)

    # -- the caller's side ------------------------------------------------------------

    def emit(self, event: UsageTrackingEvent | EventDraft) -> None:
        """Queue the event for delivery and return at once; never raises for I/O.

        From sync or async code alike. With the queue full (the broker slower than the
        service, or away), the event is written to the spool on this thread instead.
        """
        if self._closed or len(self._queue) >= self._queue_max:
            self._spool_from_caller(event)
            return
        # A draft goes in as a plain tuple: the GC stops tracking it (see producers.wire).
        self._queue.append(tuple(event) if isinstance(event, EventDraft) else event)
        if self._thread is None:
            self._start_sender()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event emitted before this call is delivered or spooled.

        Returns False if that did not happen within `timeout` seconds. Events that went
        to the spool count as settled here: they are on disk, and replayed later.
        """
        if self._closed:
            return not self._queue
        marker = _FlushMarker()
        self._queue.append(marker)
        if self._thread is None:
            self._start_sender()
        self._wake_sender()
        return marker.done.wait(timeout)

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT_SECONDS) -> None:
        """Deliver or spool everything, stop the sender; waits at most about `timeout` s.

        Whatever the sender could not settle in time (the broker hanging) is written to
        the spool from this thread, so nothing emitted is lost. Safe to call twice.
        """
        with self._start_lock:
            if self._closed:
                return
            self._closing = True
            self._close_deadline = time.monotonic() + timeout * 0.8
            thread = self._thread
        self._wake_sender()
        if thread is not None:
            thread.join(timeout)
        with self._start_lock:
            self._closed = True
        self._spool_leftovers()
        self._ledger.log_unreported_drops()
        self.spool.close()
        _LIVE_TRANSPORTS.discard(self)

    def stats(self) -> TransportStats:
        """The counters right now."""
        available, last_error = self._link.health()
        return TransportStats(
            **self._ledger.counts(),
            # Cheap on purpose (stats may be polled): flush markers, if any, count too.
            queued=len(self._queue),
            spool_bytes=self.spool.size_bytes,
            spool_segments=self.spool.pending_segments(),
            broker_available=available,
            last_error=last_error,
        )

    def _spool_from_caller(self, event: UsageTrackingEvent | EventDraft) -> None:
        self._ledger.add(overflows=1)
        self._spool_events([self._encoding.encode_one(event)])

    def _start_sender(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run_sender, name="usage-tracking-sender", daemon=True)
            self._thread = thread
            thread.start()

    def _wake_sender(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass  # the loop already ended

    def _after_fork_in_child(self) -> None:
        # The sender thread does not exist in a forked child, and the parent's open
        # spool file must not be shared: start over with fresh state and a fresh spool.
        self.spool = EventSpool(self.spool.directory, self.spool.max_bytes, self.spool.segment_bytes)
        self._reset_runtime_state()

    # -- the sender thread ---------------------------------------------------------------
    #
    # One publish is in flight at a time (`producers.publish_slot`, which says what its
    # outcome does to the events); the connection and the broker's health are
    # `producers.broker_link`'s, the counters and spool writes `producers.delivery_ledger`'s.

    def _run_sender(self) -> None:
        try:
            asyncio.run(self._send_forever())
        except Exception:  # noqa: BLE001 - the sender must not die silently
            log.exception("usage tracking sender stopped on an unexpected error; events go to the spool")
        finally:
            self._loop = None

    async def _send_forever(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            while True:
                self._slot.settle()
                items, markers = self._drain()
                if items:
                    await self._route(self._encoding.encode(items))
                self._held_markers.extend(markers)
                self._release_markers()
                if self._closing and not self._queue:
                    await self._slot.wait(self._closing, self._close_deadline)
                    break
                if not items and not markers and not await self._replay_one_segment():
                    await self._sleep(self._linger)
                elif items and not markers and len(self._queue) < _FULL_MESSAGE_EVENTS:
                    # A small batch went out: gather more before the next publish. Each
                    # publish costs the sender ~1-2 ms of CPU in aiokafka, which a
                    # GIL-bound service would otherwise pay every round trip (~25 ms).
                    await self._sleep(self._linger)
            self._slot.give_up()
        finally:
            await self._link.stop()

    def _drain(self) -> tuple[list[UsageTrackingEvent | tuple[Any, ...]], list[_FlushMarker]]:
        events: list[UsageTrackingEvent | tuple[Any, ...]] = []
        markers: list[_FlushMarker] = []
        queue = self._queue
        while queue and len(events) < self._max_per_publish:
            item = queue.popleft()
            if isinstance(item, _FlushMarker):
                markers.append(item)
                break  # events after a marker are not its business: settle them next round
            events.append(item)
        return events, markers

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    async def _route(self, events: list[EncodedEvent]) -> None:
        """Publish the events, or spool them if the broker is stalled or away."""
        if self._slot.current is not None:
            await self._slot.wait(self._closing, self._close_deadline)
        if self._slot.current is not None:
            self._spool_events(events)
            return
        publisher = await self._link.connected(self._closing, self._close_deadline)
        if publisher is None:
            self._spool_events(events)
            return
        self._slot.start(publisher, events, segment=None)
        await self._slot.wait(self._closing, self._close_deadline)

    async def _replay_one_segment(self) -> bool:
        """Send one spooled segment if the broker answers; whether one was sent."""
        if self._closing or self._queue or self._slot.current is not None or not self._spool_may_hold_events:
            return False
        if time.monotonic() < self._link.next_attempt and self._link.publisher is None:
            return False
        publisher = await self._link.connected(self._closing, self._close_deadline)
        if publisher is None:
            return False
        segment = self.spool.claim()
        if segment is None and self.spool.has_pending():
            # Only an open segment holds events (written during an outage or an overflow).
            self.spool.seal()
            segment = self.spool.claim()
        if segment is None:
            self._spool_may_hold_events = False
            return False
        events, unreadable = self._encoding.decode_lines(self.spool.read_lines(segment), str(segment.path))
        self._ledger.add(unreadable=unreadable)
        if not events:
            self.spool.delivered(segment)
            return True
        self._slot.start(publisher, events, segment=segment)
        await self._slot.wait(self._closing, self._close_deadline)
        return True

    def _release_markers(self) -> None:
        # A flush marker is settled once nothing drained before it is still in flight.
        if self._slot.current is None and self._held_markers:
            for marker in self._held_markers:
                marker.done.set()
            self._held_markers.clear()

    # -- both sides ----------------------------------------------------------------------

    def _spool_events(self, events: Sequence[EncodedEvent]) -> None:
        if self._ledger.spool_events(events):
            self._spool_may_hold_events = True

    def _spool_leftovers(self) -> None:
        leftovers = self._slot.take_unsettled()
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _FlushMarker):
                item.done.set()
            else:
                leftovers.append(self._encoding.encode_one(item))
        for marker in self._held_markers:
            marker.done.set()
        if leftovers:
            # In flight may also have been delivered: a duplicate is billed once, a loss never.
            self._spool_events(leftovers)


_LIVE_TRANSPORTS: weakref.WeakSet[KafkaTransport] = weakref.WeakSet()


def _close_live_transports() -> None:
    for transport in list(_LIVE_TRANSPORTS):
        try:
            transport.close()
        except Exception:  # noqa: BLE001 - one broken transport must not keep the others open
            log.exception("closing the usage tracking transport at exit failed")


def _reset_in_forked_child() -> None:
    for transport in list(_LIVE_TRANSPORTS):
        transport._after_fork_in_child()


atexit.register(_close_live_transports)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_forked_child)
