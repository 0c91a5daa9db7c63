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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from producers.errors import EventTooLargeError, SpoolError
from producers.sender_encoding import EncodingStage
from producers.spool import ClaimedSegment, EventSpool
from producers.wire import EncodedEvent, EventDraft
from schemas import UsageTrackingEvent

if TYPE_CHECKING:
    from producers.kafka_security import KafkaSecurity
    from producers.publisher import KafkaPublisher

log = logging.getLogger("producers.transport")

DEFAULT_QUEUE_MAX_EVENTS = 50_000
DEFAULT_LINGER_SECONDS = 0.05
# Events sent per publish round trip; several Kafka messages of up to 1,000 events each.
DEFAULT_MAX_EVENTS_PER_PUBLISH = 5_000
DEFAULT_REQUEST_TIMEOUT_MS = 10_000
# A publish not acknowledged within this long means the broker is away, for now.
DEFAULT_STALL_SECONDS = 2.0
DEFAULT_CLOSE_TIMEOUT_SECONDS = 5.0
RECONNECT_INITIAL_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0
# Events of one full Kafka message: with fewer queued, the sender lingers before publishing.
_FULL_MESSAGE_EVENTS = 1000
# A full spool is reported at once, then at most this often (with counts), not per event.
_DROP_LOG_INTERVAL_SECONDS = 10.0


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


@dataclass(slots=True)
class _Inflight:
    """The one publish on its way: its task, its events, and the segment they came from."""

    task: asyncio.Task[Any]
    events: list[EncodedEvent]
    segment: ClaimedSegment | None
    started: float
    stall_reported: bool = False


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
        self._request_timeout_ms = request_timeout_ms
        self._stall_seconds = stall_seconds
        self._reconnect_initial = reconnect_initial_seconds
        self._reconnect_max = reconnect_max_seconds
        self._client_id = client_id
        self._security = security
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
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._closed = False
        self._close_deadline = 0.0
        self._inflight: _Inflight | None = None
        self._held_markers: list[_FlushMarker] = []
        self._stopping_publishers: set[asyncio.Task[None]] = set()
        self._spool_may_hold_events = True
        self._publisher: KafkaPublisher | None = None
        self._broker_available: bool | None = None
        self._next_attempt = 0.0
        self._backoff = self._reconnect_initial
        self._delivered = 0
        self._spooled = 0
        self._replayed = 0
        self._dropped = 0
        self._overflows = 0
        self._unreadable = 0
        self._last_error: str | None = None
        self._last_drop_log = 0.0
        self._drops_since_log = 0
        self._last_drop_reason = ""

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
        self._log_unreported_drops()
        self.spool.close()
        _LIVE_TRANSPORTS.discard(self)

    def stats(self) -> TransportStats:
        """The counters right now."""
        with self._state_lock:
            return TransportStats(
                delivered=self._delivered,
                spooled=self._spooled,
                replayed=self._replayed,
                dropped=self._dropped,
                queue_overflows=self._overflows,
                unreadable_spool_lines=self._unreadable,
                # Cheap on purpose (stats may be polled): flush markers, if any, count too.
                queued=len(self._queue),
                spool_bytes=self.spool.size_bytes,
                spool_segments=self.spool.pending_segments(),
                broker_available=self._broker_available,
                last_error=self._last_error,
            )

    def _spool_from_caller(self, event: UsageTrackingEvent | EventDraft) -> None:
        with self._state_lock:
            self._overflows += 1
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
    # One publish is in flight at a time. It normally settles in milliseconds; if it does
    # not within `stall_seconds`, the broker is taken as unavailable and new events go to
    # the spool, while the in-flight batch stays with aiokafka, which retries it until the
    # broker answers or fails it (then it is spooled too). Never handing the same events
    # to two places while both can deliver them is what keeps an outage free of duplicates.

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
                self._settle_inflight()
                items, markers = self._drain()
                if items:
                    await self._route(self._encoding.encode(items))
                self._held_markers.extend(markers)
                self._release_markers()
                if self._closing and not self._queue:
                    await self._wait_inflight()
                    break
                if not items and not markers and not await self._replay_one_segment():
                    await self._sleep(self._linger)
                elif items and not markers and len(self._queue) < _FULL_MESSAGE_EVENTS:
                    # A small batch went out: gather more before the next publish. Each
                    # publish costs the sender ~1-2 ms of CPU in aiokafka, which a
                    # GIL-bound service would otherwise pay every round trip (~25 ms).
                    await self._sleep(self._linger)
            self._give_up_inflight()
        finally:
            await self._stop_publisher()
            await asyncio.gather(*self._stopping_publishers, return_exceptions=True)

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
        if self._inflight is not None:
            await self._wait_inflight()
        if self._inflight is not None:
            self._spool_events(events)
            return
        publisher = await self._connected_publisher()
        if publisher is None:
            self._spool_events(events)
            return
        self._start_publish(publisher, events, segment=None)
        await self._wait_inflight()

    async def _replay_one_segment(self) -> bool:
        """Send one spooled segment if the broker answers; whether one was sent."""
        if self._closing or self._queue or self._inflight is not None or not self._spool_may_hold_events:
            return False
        if time.monotonic() < self._next_attempt and self._publisher is None:
            return False
        publisher = await self._connected_publisher()
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
        with self._state_lock:
            self._unreadable += unreadable
        if not events:
            self.spool.delivered(segment)
            return True
        self._start_publish(publisher, events, segment=segment)
        await self._wait_inflight()
        return True

    def _start_publish(
        self, publisher: KafkaPublisher, events: list[EncodedEvent], segment: ClaimedSegment | None
    ) -> None:
        task = asyncio.get_running_loop().create_task(publisher.publish_encoded(events))
        with self._state_lock:
            self._inflight = _Inflight(task, events, segment, time.monotonic())

    async def _wait_inflight(self) -> None:
        """Wait for the publish in flight, at most until it counts as stalled."""
        inflight = self._inflight
        if inflight is None:
            return
        remaining = inflight.started + self._stall_seconds - time.monotonic()
        if self._closing:
            remaining = min(remaining, self._close_deadline - time.monotonic())
        if remaining > 0:
            await asyncio.wait({inflight.task}, timeout=remaining)
        if not self._settle_inflight() and not inflight.stall_reported:
            inflight.stall_reported = True
            self._broker_stalled(inflight)

    def _settle_inflight(self) -> bool:
        """Account for the publish in flight if it finished; whether nothing is in flight now."""
        inflight = self._inflight
        if inflight is None:
            return True
        if not inflight.task.done():
            return False
        with self._state_lock:
            self._inflight = None
        error = None if inflight.task.cancelled() else inflight.task.exception()
        if error is None and not inflight.task.cancelled():
            self._publish_succeeded(inflight)
        elif isinstance(error, EventTooLargeError):
            self._publish_too_large(inflight, error)
        else:
            self._publish_failed(inflight, error or asyncio.CancelledError())
        self._release_markers()
        return self._inflight is None

    def _publish_succeeded(self, inflight: _Inflight) -> None:
        sent = inflight.task.result().events
        with self._state_lock:
            if inflight.segment is None:
                self._delivered += sent
            else:
                self._replayed += sent
        if inflight.segment is not None:
            self.spool.delivered(inflight.segment)
            log.info("replayed %d spooled usage events to %s", sent, self.topic)
        self._broker_answered()

    def _publish_too_large(self, inflight: _Inflight, error: EventTooLargeError) -> None:
        # Can never be sent, now or later: drop it alone, loudly, and send the rest.
        self._count_dropped(1, f"event {error.event_id} can never fit in a Kafka message: {error}")
        rest = [event for event in inflight.events if event.event_id != error.event_id]
        if inflight.segment is not None:
            self.spool.delivered(inflight.segment)
        if rest and self._publisher is not None:
            self._start_publish(self._publisher, rest, segment=None)
        elif rest:
            self._spool_events(rest)

    def _publish_failed(self, inflight: _Inflight, error: BaseException) -> None:
        if inflight.segment is not None:
            self.spool.release(inflight.segment)
        else:
            self._spool_events(inflight.events)
        self._broker_failed(error)

    def _give_up_inflight(self) -> None:
        """Closing with a publish still stuck: spool its events (a late ack just makes a duplicate)."""
        inflight = self._inflight
        if inflight is None:
            return
        with self._state_lock:
            self._inflight = None
        inflight.task.cancel()
        if inflight.segment is not None:
            self.spool.release(inflight.segment)
        else:
            self._spool_events(inflight.events)
        self._release_markers()

    def _release_markers(self) -> None:
        # A flush marker is settled once nothing drained before it is still in flight.
        if self._inflight is None and self._held_markers:
            for marker in self._held_markers:
                marker.done.set()
            self._held_markers.clear()

    async def _connected_publisher(self) -> KafkaPublisher | None:
        if self._publisher is not None:
            return self._publisher
        if time.monotonic() < self._next_attempt:
            return None
        if self._closing and time.monotonic() >= self._close_deadline:
            return None
        from producers.publisher import KafkaPublisher

        publisher = KafkaPublisher(
            self.bootstrap_servers,
            self.topic,
            client_id=self._client_id,
            request_timeout_ms=self._request_timeout_ms,
            security=self._security,
            linger_ms=0,  # the events were gathered here already: no second wait in aiokafka
        )
        timeout = self._stall_seconds * 2
        if self._closing:
            timeout = max(self._close_deadline - time.monotonic(), 0.05)
        try:
            await asyncio.wait_for(publisher.start(), timeout)
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, timed out: all mean "later"
            self._broker_failed(exc, publisher)
            return None
        self._publisher = publisher
        self._broker_answered()
        return publisher

    def _broker_answered(self) -> None:
        was = self._broker_available
        with self._state_lock:
            self._broker_available = True
            self._backoff = self._reconnect_initial
            self._next_attempt = 0.0
        if was is False:
            log.warning("Kafka at %s answers again; replaying spooled usage events", self.bootstrap_servers)
        if was is not True:
            # Events spooled during the outage become replayable now.
            self.spool.seal()

    def _broker_stalled(self, inflight: _Inflight) -> None:
        if self._broker_available is not False:
            log.warning(
                "Kafka at %s has not acknowledged %d usage events for %.0f s; new events go to the "
                "spool at %s until it answers",
                self.bootstrap_servers,
                len(inflight.events),
                self._stall_seconds,
                self.spool.directory,
            )
        with self._state_lock:
            self._broker_available = False
            self._last_error = f"no acknowledgement within {self._stall_seconds:.0f} s"

    def _broker_failed(self, exc: BaseException, publisher: KafkaPublisher | None = None) -> None:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._broker_available is not False:
            log.warning(
                "Kafka at %s is unavailable (%s); usage events go to the spool at %s until it is back",
                self.bootstrap_servers,
                reason,
                self.spool.directory,
            )
        with self._state_lock:
            self._broker_available = False
            self._last_error = reason
            self._next_attempt = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self._reconnect_max)
        stale = publisher or self._publisher
        self._publisher = None
        if stale is not None:
            # Stopped aside: a broken connection may take a while to close, and the sender
            # has events to spool meanwhile.
            task = asyncio.get_running_loop().create_task(self._stop_quietly(stale))
            self._stopping_publishers.add(task)
            task.add_done_callback(self._stopping_publishers.discard)

    async def _stop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await self._stop_quietly(publisher)

    async def _stop_quietly(self, publisher: KafkaPublisher) -> None:
        try:
            await asyncio.wait_for(publisher.stop(), self._stall_seconds)
        except Exception:  # noqa: BLE001 - a broken connection may not close cleanly; it is dropped
            log.debug("stopping the Kafka producer failed", exc_info=True)

    # -- both sides ----------------------------------------------------------------------

    def _spool_events(self, events: Sequence[EncodedEvent]) -> None:
        try:
            stored = self.spool.append_lines([event.json + b"\n" for event in events])
        except SpoolError as exc:
            stored = 0
            reason = str(exc)
        else:
            reason = f"the spool at {self.spool.directory} is full ({self.spool.max_bytes} bytes)"
        with self._state_lock:
            self._spooled += stored
        if stored:
            self._spool_may_hold_events = True
        if stored < len(events):
            self._count_dropped(len(events) - stored, reason)

    def _count_dropped(self, count: int, reason: str) -> None:
        now = time.monotonic()
        with self._state_lock:
            self._dropped += count
            self._drops_since_log += count
            self._last_drop_reason = reason
            due = now - self._last_drop_log >= _DROP_LOG_INTERVAL_SECONDS
            if due:
                reported, self._drops_since_log, self._last_drop_log = self._drops_since_log, 0, now
            total = self._dropped
        if due:
            self._log_drops(reported, total, reason)

    def _log_unreported_drops(self) -> None:
        """Closing: losses the log interval held back are reported now, so every loss is logged."""
        with self._state_lock:
            reported, self._drops_since_log = self._drops_since_log, 0
            total, reason = self._dropped, self._last_drop_reason
        if reported:
            self._log_drops(reported, total, reason)

    @staticmethod
    def _log_drops(count: int, total: int, reason: str) -> None:
        log.error(
            "LOST %d usage events (%d in total since start): %s. Raise USAGE_TRACKING_SPOOL_MAX_BYTES "
            "or bring Kafka back; these calls will not be billed",
            count,
            total,
            reason,
        )

    def _spool_leftovers(self) -> None:
        with self._state_lock:
            inflight, self._inflight = self._inflight, None
        leftovers = list(inflight.events) if inflight is not None and inflight.segment is None else []
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
