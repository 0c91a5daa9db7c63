"""One chunk of Kafka messages through the pure core and into the sink."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from stream_app.core.dead_letter import dead_letter_record
from stream_app.core.decode import DecodedEvent, MessageOrigin, Rejection, decode_message
from stream_app.core.pricing import price_event
from stream_app.core.rows import ChunkRows, build_chunk_rows
from stream_app.sink.clickhouse import ClickHouseSink
from stream_app.worker.metrics import WorkerMetrics


@dataclass(frozen=True)
class ChunkOutcome:
    rows: ChunkRows
    dead_letters: list[tuple[bytes, bytes]]
    write_attempts: int


class ChunkProcessor:
    """Decode, price, write; returns the dead letters for the caller to publish."""

    def __init__(
        self,
        sink: ClickHouseSink,
        metrics: WorkerMetrics,
        *,
        window_seconds: int,
        max_future_skew: timedelta,
        consumer_group: str,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.window_seconds = window_seconds
        self.max_future_skew = max_future_skew
        self.consumer_group = consumer_group

    def process(self, messages: Sequence[tuple[bytes | None, MessageOrigin]]) -> ChunkOutcome:
        """Blocking: returns only once the chunk is in ClickHouse (the write retries forever)."""
        started = time.perf_counter()
        now = datetime.now(timezone.utc)
        decoded: list[DecodedEvent] = []
        rejections: list[Rejection] = []
        for value, origin in messages:
            result = decode_message(value, origin, now=now, max_future_skew=self.max_future_skew)
            decoded.extend(result.events)
            rejections.extend(result.rejections)
        rows = build_chunk_rows(
            decoded, rejections, price=price_event, window_seconds=self.window_seconds, ingested_at=now
        )
        attempts = self.sink.write_chunk(rows)
        dead_letters = [
            dead_letter_record(r, rejected_at=now, consumer_group=self.consumer_group) for r in rejections
        ]
        m = self.metrics
        m.messages += len(messages)
        m.events_accepted += rows.events
        m.events_unpriced += rows.unpriced_events
        m.duplicates_in_chunk += rows.duplicates_in_chunk
        m.chunks += 1
        for r in rejections:
            m.dead_letters[r.reason] += 1
        m.last_chunk_seconds = time.perf_counter() - started
        return ChunkOutcome(rows, dead_letters, attempts)
