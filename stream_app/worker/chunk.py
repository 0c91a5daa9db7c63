"""One chunk of Kafka messages through the pure core and into the sink, until it is written.

An attempt looks the chunk's keys up, decides which copies are billed (SPEC.md §3),
builds the rows and writes them. A chunk from very many sessions or agents is written
in runs of consecutive messages (`identity_groups`), as if it had been cut smaller, so
the window cells held at once stay bounded whatever the number of sessions. A failed
attempt is retried whole, because the store may hold part of what it wrote: the next
look-up sees that, and the rows it rewrites land on the same keys. Three ways out of a
failing chunk, none of which commits past an unwritten event:

- the write succeeds (after an outage: retried with backoff, visibly);
- the worker is asked to stop (SIGTERM, Ctrl-C): `StopRequested` within a second;
- ClickHouse answers but refuses the chunk again and again: the messages are written
  one by one, and a message refused on its own is dead-lettered (`sink_rejected`),
  its window rows replaced by empty ones, and the partition carries on, loudly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from stream_app.core.counting import (
    Copy,
    CountingDecision,
    StoredCopy,
    chunk_keys,
    conflict_detail,
    content_of,
    copies_of,
    decide,
    differing_fields,
)
from stream_app.core.dead_letter import dead_letter_record
from stream_app.core.chunk_limits import MAX_IDENTITIES_PER_WRITE, identity_groups
from stream_app.core.decode import DecodeResult, MessageOrigin, RejectReason, Rejection, original_event_bytes
from stream_app.core.fast_decode import decode_billable_message
from stream_app.core.billable import BillableEvent
from stream_app.core.pricing import PricedCost, price_event
from stream_app.core.rows import ChunkRows, build_chunk_rows, tombstone_rows
from stream_app.core.windows import Source
from stream_app.errors import PipelineError
from stream_app.sink.clickhouse import ClickHouseSink
from stream_app.worker.gc_tuning import collector_paused, collector_running
from stream_app.worker.metrics import WorkerMetrics

log = logging.getLogger("stream_app.worker")


class StopRequested(PipelineError):
    """The worker was asked to stop while a chunk was not written: stop without committing."""


@dataclass
class ChunkSummary:
    """What a chunk wrote, counted (its rows are let go run by run)."""

    events: int = 0
    unpriced_events: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    def add(self, rows: ChunkRows) -> None:
        self.events += rows.events
        self.unpriced_events += rows.unpriced_events
        self.rejections.extend(rows.rejections)


@dataclass(frozen=True)
class ChunkOutcome:
    rows: ChunkSummary
    dead_letters: list[tuple[bytes, bytes]]
    attempts: int
    duplicates: int = 0


@dataclass
class RetryPolicy:
    """How a failing chunk is retried, and when it counts as refused rather than unlucky."""

    initial_seconds: float = 0.2
    max_seconds: float = 10.0
    refusals_before_isolating: int = 5


@dataclass
class _Chunk:
    copies: list[Copy]
    rejections: list[Rejection]
    values: dict[Source, bytes] = field(default_factory=dict)
    prices: dict[int, PricedCost] | None = None  # by id() of each copy, once priced (pure: once a chunk)


class ChunkProcessor:
    """Decode, decide, price, write; returns the dead letters for the caller to publish."""

    def __init__(
        self,
        sink: ClickHouseSink,
        metrics: WorkerMetrics,
        *,
        window_seconds: int,
        max_future_skew: timedelta,
        consumer_group: str,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
        decode_options: dict | None = None,
        price: Callable[[BillableEvent], PricedCost] = price_event,
        max_identities_per_write: int = MAX_IDENTITIES_PER_WRITE,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.window_seconds = window_seconds
        self.max_future_skew = max_future_skew
        self.consumer_group = consumer_group
        self.retry = retry or RetryPolicy()
        self.stop = stop or threading.Event()
        self.decode_options = decode_options or {}
        self.price = price
        self.max_identities_per_write = max_identities_per_write

    def process(self, messages: Sequence[tuple[bytes | None, MessageOrigin]]) -> ChunkOutcome:
        """Blocking: returns once the chunk is in ClickHouse; raises `StopRequested` if told to stop."""
        with collector_paused():  # gc_tuning.py: the chunk's objects are freed by reference counting
            return self._process(messages)

    def _process(self, messages: Sequence[tuple[bytes | None, MessageOrigin]]) -> ChunkOutcome:
        started = time.perf_counter()
        now = datetime.now(timezone.utc)
        results = [
            decode_billable_message(value, origin, now=now, max_future_skew=self.max_future_skew, **self.decode_options)
            for value, origin in messages
        ]
        written = ChunkSummary()
        duplicates = attempts = 0
        # Written in runs of messages with a bounded number of sessions and agents (memory).
        identities = [self._identities(result) for result in results]
        for run in identity_groups(identities, self.max_identities_per_write) or [range(0)]:
            chunk = _Chunk([], [])
            decoded = []
            for index in run:
                (value, origin), result = messages[index], results[index]
                decoded.extend(result.events)
                chunk.rejections.extend(result.rejections)
                if result.events:
                    chunk.values[Source(origin.topic, origin.partition, origin.offset)] = value or b""
            chunk.copies = copies_of(decoded)
            rows, run_duplicates, run_attempts = self._write_until_done(chunk, now)
            written.add(rows)
            duplicates += run_duplicates
            attempts = max(attempts, run_attempts)
        dead_letters = [
            dead_letter_record(r, rejected_at=now, consumer_group=self.consumer_group) for r in written.rejections
        ]
        m = self.metrics
        m.messages += len(messages)
        m.events_accepted += written.events
        m.events_unpriced += written.unpriced_events
        m.duplicates += duplicates
        m.chunks += 1
        for r in written.rejections:
            m.dead_letters[r.reason] += 1
        m.last_chunk_seconds = time.perf_counter() - started
        m.chunk_seconds += m.last_chunk_seconds
        m.last_chunk_end = time.time()
        return ChunkOutcome(written, dead_letters, attempts, duplicates)

    @staticmethod
    def _identities(result: DecodeResult) -> set[tuple]:
        """Whom a message's events bring window cells for: (project, agent, session)."""
        return {(d.event.project_id, d.event.agent_name, d.event.session_id) for d in result.events}

    # --- one attempt ---------------------------------------------------------------------

    def _attempt(self, chunk: _Chunk, now: datetime) -> tuple[ChunkRows, int]:
        """Look up, decide, build, write; returns the rows written and the duplicates found.

        Every copy is priced while ClickHouse looks the keys up (pricing does not depend
        on which copies are billed; the few duplicates are priced for nothing).
        """
        stored: dict = {}
        if chunk.copies:
            pending = self.sink.lookup_soon(chunk_keys(chunk.copies))
            try:
                if chunk.prices is None:
                    chunk.prices = {id(copy): self.price(copy.item.event) for copy in chunk.copies}
            finally:
                stored = pending.result()  # also when pricing failed: the look-up must be over before a write
        decision = decide(chunk.copies, stored)
        conflicts, duplicates = self._conflict_rejections(decision, chunk)
        prices = chunk.prices or {}
        rows = build_chunk_rows(
            decision.accepted,
            [*chunk.rejections, *conflicts],
            price=self.price,
            window_seconds=self.window_seconds,
            ingested_at=now,
            prices=[prices[id(copy)] for copy in decision.accepted],
        )
        self.sink.write_rows(rows)
        return rows, len(decision.duplicates) + duplicates

    def _conflict_rejections(self, decision: CountingDecision, chunk: _Chunk) -> tuple[list[Rejection], int]:
        """Dead letters naming the differing fields; copies equal after all count as duplicates."""
        if not decision.conflicts:
            return [], 0
        stored_keys = [c.copy.key for c in decision.conflicts if isinstance(c.billed, StoredCopy)]
        stored_content = self.sink.stored_contents(stored_keys) if stored_keys else {}
        rejections: list[Rejection] = []
        equal = 0
        for conflict in decision.conflicts:
            copy = conflict.copy
            ours = content_of(copy.item.event)
            billed = (
                stored_content.get(copy.key)
                if isinstance(conflict.billed, StoredCopy)
                else content_of(conflict.billed.item.event)
            )
            fields = differing_fields(ours, billed) if billed is not None else []
            if billed is not None and not fields:
                equal += 1  # a stored copy without a fingerprint (upgraded store): same content
                continue
            origin = copy.item.origin
            event = copy.item.event
            rejections.append(
                Rejection(
                    RejectReason.CONFLICTING_DUPLICATE,
                    conflict_detail(fields, conflict.billed_source),
                    origin,
                    copy.item.index,
                    original_event_bytes(chunk.values[copy.source], copy.item.index),
                    event.event_id,
                    event.project_id,
                )
            )
        return rejections, equal

    # --- retries, stopping, isolating -----------------------------------------------------

    def _write_until_done(self, chunk: _Chunk, now: datetime) -> tuple[ChunkRows, int, int]:
        delay = self.retry.initial_seconds
        attempts = 0
        stats = self.sink.stats
        while True:
            attempts += 1
            try:
                rows, duplicates = self._attempt(chunk, now)
            except Exception as exc:  # any failure: the chunk must not be skipped
                stats.write_failures += 1
                self.metrics.sink_retries = stats.write_failures
                if stats.retrying_since is None:
                    stats.retrying_since = time.time()
                log.warning(
                    "ClickHouse write failed (attempt %d, %d events held, offsets not committed): %s; retrying in %.1f s",
                    attempts, len(chunk.copies), _one_line(exc), delay,
                )
                if attempts >= self.retry.refusals_before_isolating and self.sink.answers():
                    rows, duplicates = self._isolate(chunk, now, exc)
                    stats.retrying_since = None
                    return rows, duplicates, attempts
                with collector_running():
                    stopping = self.stop.wait(delay)
                if stopping:
                    raise StopRequested(f"asked to stop while a chunk of {len(chunk.copies)} events was unwritten") from exc
                delay = min(delay * 2, self.retry.max_seconds)
                continue
            if attempts > 1:
                log.warning("ClickHouse write succeeded after %d attempts", attempts)
            stats.retrying_since = None
            return rows, duplicates, attempts

    def _isolate(self, chunk: _Chunk, now: datetime, first_error: Exception) -> tuple[ChunkRows, int]:
        """Write the chunk message by message; dead-letter the messages refused on their own."""
        log.error(
            "ClickHouse answers but refuses this chunk (%s): writing its %d messages one by one",
            _one_line(first_error), len(chunk.values),
        )
        total = ChunkRows()
        duplicates = 0
        by_message: dict[Source, list[Copy]] = {}
        for copy in chunk.copies:
            by_message.setdefault(copy.source, []).append(copy)
        for source, copies in by_message.items():
            part = _Chunk(copies, [], {source: chunk.values[source]})
            try:
                rows, dups = self._attempt(part, now)
            except Exception as exc:  # noqa: BLE001 - refused on its own: a poison message
                if not self.sink.answers():
                    raise  # an outage after all: the caller retries the chunk
                repaired = self._repair_if_billed(part, now, exc)
                rows, dups = repaired if repaired is not None else (self._dead_letter_message(part, now, exc), 0)
            total.absorb(rows)
            duplicates += dups
        rest = _Chunk([], chunk.rejections)
        rows, _ = self._attempt(rest, now)
        total.absorb(rows)
        return total, duplicates

    def _repair_if_billed(self, part: _Chunk, now: datetime, error: Exception) -> tuple[ChunkRows, int] | None:
        """A message whose events were stored but whose window cells were refused is billed:
        its cells are rebuilt from the stored events instead (None if its events are not stored)."""
        stored = self.sink.lookup(chunk_keys(part.copies))
        decision = decide(part.copies, stored)
        if not decision.accepted or any(stored.get(c.key) is None for c in decision.accepted):
            return None
        source = next(iter(part.values))
        log.error(
            "message %s[%d]@%d: its %d events are stored but ClickHouse refuses its window cells (%s); "
            "rebuilding the cells of its days from the stored events",
            source.topic, source.partition, source.offset, len(decision.accepted), _one_line(error),
        )
        days = sorted({(c.item.event.project_id, c.item.event.timestamp.astimezone(timezone.utc).date()) for c in decision.accepted})
        self.sink.rebuild_cells_of_days(days)
        rows = build_chunk_rows(decision.accepted, [], price=self.price, window_seconds=self.window_seconds, ingested_at=now)
        self.metrics.isolated_messages += 1
        return rows, len(decision.duplicates)

    def _dead_letter_message(self, part: _Chunk, now: datetime, error: Exception) -> ChunkRows:
        source = next(iter(part.values))
        log.error(
            "POISON MESSAGE %s[%d]@%d: ClickHouse refuses its %d events (%s); dead-lettering them "
            "(reason sink_rejected) and replacing its window rows with empty ones",
            source.topic, source.partition, source.offset, len(part.copies), _one_line(error),
        )
        rejections = [
            Rejection(
                RejectReason.SINK_REJECTED,
                f"ClickHouse refused the rows of this event's message while answering otherwise: {_one_line(error)}",
                c.item.origin,
                c.item.index,
                original_event_bytes(part.values[source], c.item.index),
                c.item.event.event_id,
                c.item.event.project_id,
            )
            for c in part.copies
        ]
        rows = tombstone_rows(part.copies, rejections, window_seconds=self.window_seconds, rejected_at=now)
        self.sink.write_rows(rows)
        self.metrics.isolated_messages += 1
        return rows


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:300] if text else type(exc).__name__
