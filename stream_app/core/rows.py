"""Turn one chunk of decoded messages into the rows the sink writes.

Pure: the caller passes the clock reading and the pricing function. A chunk is the unit
of work between two offset commits, so everything here must be replay-safe: the same
input always yields rows that the tables collapse to the same totals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from schemas import UsageTrackingEvent
from stream_app.core.decode import DecodedEvent, Rejection
from stream_app.core.pricing import PriceStatus, PricedCost, stored_cost
from stream_app.core.windows import window_start

EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "project_id",
    "timestamp",
    "window_start",
    "source",
    "agent_name",
    "session_id",
    "handoff_chain",
    "operation",
    "method",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "tool_call_count",
    "tool_calls",
    "finish_reason",
    "duration_ms",
    "error",
    "cost_usd",
    "price_status",
    "price_source",
    "catalog_provider",
    "catalog_model",
    "price_detail",
    "provider_cost_usd",
    "provider_metadata",
    "context",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "ingested_at",
)

# The columns of a `usage_events` row that pricing decides (and `reprice` may rewrite).
PRICING_COLUMNS: tuple[str, ...] = (
    "cost_usd", "price_status", "price_source", "catalog_provider", "catalog_model", "price_detail"
)

REJECTION_COLUMNS: tuple[str, ...] = (
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "batch_index",
    "reason",
    "detail",
    "event_id",
    "project_id",
    "raw",
    "rejected_at",
)


@dataclass(slots=True)
class ChunkRows:
    """Everything one chunk writes, plus what it touched and dropped."""

    event_rows: list[tuple] = field(default_factory=list)
    rejection_rows: list[tuple] = field(default_factory=list)
    touched_windows: set[tuple[str, datetime]] = field(default_factory=set)
    duplicates_in_chunk: int = 0
    unpriced_events: int = 0

    @property
    def events(self) -> int:
        return len(self.event_rows)


def build_chunk_rows(
    decoded: Sequence[DecodedEvent],
    rejections: Sequence[Rejection],
    *,
    price: Callable[[UsageTrackingEvent], PricedCost],
    window_seconds: int,
    ingested_at: datetime,
) -> ChunkRows:
    """Price and flatten a chunk; an event_id seen twice in the chunk is written once."""
    rows = ChunkRows()
    latest: dict[tuple[str, str], DecodedEvent] = {}
    for item in decoded:
        key = (item.event.project_id, item.event.event_id)
        if key in latest:
            rows.duplicates_in_chunk += 1
        latest[key] = item  # the later copy wins, as it does in the table
    for item in latest.values():
        priced = price(item.event)
        if priced.status != PriceStatus.PRICED:
            rows.unpriced_events += 1
        start = window_start(item.event.timestamp, window_seconds)
        rows.event_rows.append(event_row(item, priced, start, ingested_at))
        rows.touched_windows.add((item.event.project_id, start))
    rows.rejection_rows = [rejection_row(r, ingested_at) for r in rejections]
    return rows


def event_row(item: DecodedEvent, priced: PricedCost, start: datetime, ingested_at: datetime) -> tuple:
    """One `usage_events` row, in `EVENT_COLUMNS` order."""
    e = item.event
    u = e.usage
    return (
        e.event_id,
        e.project_id,
        e.timestamp,
        start,
        e.source,
        e.agent_name,
        e.session_id or "",
        list(e.handoff_chain),
        e.operation or "",
        e.method,
        e.provider,
        e.model,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
        len(e.tool_calls),
        _compact_json([t.model_dump(mode="json") for t in e.tool_calls]),
        e.finish_reason or "",
        e.duration_ms,
        e.error,
        *pricing_values(priced),
        e.provider_cost,
        _compact_json(e.provider_metadata),
        _compact_json(e.context),
        item.origin.topic,
        item.origin.partition,
        item.origin.offset,
        ingested_at,
    )


def pricing_values(priced: PricedCost) -> tuple:
    """The `PRICING_COLUMNS` of a row priced as `priced`, in that order."""
    return (
        stored_cost(priced.cost_usd),
        priced.status,
        priced.source,
        priced.catalog_provider,
        priced.catalog_model,
        priced.detail,
    )


def rejection_row(rejection: Rejection, rejected_at: datetime) -> tuple:
    """One `usage_rejections` row, in `REJECTION_COLUMNS` order."""
    return (
        rejection.origin.topic,
        rejection.origin.partition,
        rejection.origin.offset,
        -1 if rejection.index is None else rejection.index,
        rejection.reason,
        rejection.detail,
        rejection.event_id or "",
        rejection.project_id or "",
        rejection.raw.decode("utf-8", errors="replace"),
        rejected_at,
    )


def _compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
