"""Turn one chunk's billed copies into the rows the sink writes.

Pure: the caller passes the clock reading, the counting decision and the pricing
function. A chunk is the unit of work between two offset commits, so everything here
must be replay-safe: the same messages always yield rows with the same keys, which the
replacing tables collapse to the same totals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from stream_app.core.billable import BillableEvent
from stream_app.core.counting import Copy
from stream_app.core.decode import Rejection
from stream_app.core.pricing import PriceStatus, PricedCost, stored_cost
from stream_app.core.window_cells import CELL_COLUMNS, CellKey, Contribution, cell_levels, contributions
from stream_app.core.windows import WindowAggregator

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
    "batch_index",
    "fingerprint",
    "price_generation",
    "ingested_at",
)

# The columns of a `usage_events` row that pricing decides (and `reprice` may rewrite).
PRICING_COLUMNS: tuple[str, ...] = (
    "cost_usd", "price_status", "price_source", "catalog_provider", "catalog_model", "price_detail"
)

ZERO_COST = Decimal(0)

# One row per window cell (window, level, source partition): see stream_app/core/window_cells.py.
WINDOW_COLUMNS: tuple[str, ...] = CELL_COLUMNS

TOOL_COLUMNS: tuple[str, ...] = (
    "project_id",
    "agent_name",
    "tool_name",
    "window_start",
    "window_seconds",
    "src_topic",
    "src_partition",
    "src_offset",
    "calls",
    "errors",
    "durations_ms",
    "version",
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
    """Everything one chunk writes."""

    event_rows: list[tuple] = field(default_factory=list)
    # Each window cell's per-message contributions; the sink folds them into the stored
    # cells (`window_rows`, what it wrote) once it has read how far those cover.
    window_parts: dict[CellKey, list[Contribution]] = field(default_factory=dict)
    window_rows: list[tuple] = field(default_factory=list)
    tool_rows: list[tuple] = field(default_factory=list)
    rejection_rows: list[tuple] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    unpriced_events: int = 0

    @property
    def events(self) -> int:
        return len(self.event_rows)

    def absorb(self, other: ChunkRows) -> None:
        """Add another part's rows (a chunk written message by message)."""
        for name in ("event_rows", "window_rows", "tool_rows", "rejection_rows", "rejections"):
            getattr(self, name).extend(getattr(other, name))
        for key, parts in other.window_parts.items():
            self.window_parts.setdefault(key, []).extend(parts)
        self.unpriced_events += other.unpriced_events


# Tool rows of a dead-lettered (poison) message: empty, and newer than any reprice.
TOMBSTONE_VERSION = 2**32 - 1


def build_chunk_rows(
    accepted: Sequence[Copy],
    rejections: Sequence[Rejection],
    *,
    price: Callable[[BillableEvent], PricedCost],
    window_seconds: int,
    ingested_at: datetime,
    generation: int = 0,
    prices: Sequence[PricedCost] | None = None,
) -> ChunkRows:
    """Price the billed copies, flatten them, and sum them into per-message window contributions.

    `prices`: each accepted copy's price, in order, if it is known already (else `price` each).
    """
    rows = ChunkRows()
    aggregator = WindowAggregator(window_seconds)
    if prices is None:
        prices = [price(copy.item.event) for copy in accepted]
    elif len(prices) != len(accepted):
        raise ValueError(f"{len(prices)} prices given for {len(accepted)} billed copies")
    for copy, priced in zip(accepted, prices):
        cost = stored_cost(priced.cost_usd)
        is_priced = priced.status == PriceStatus.PRICED
        rows.unpriced_events += not is_priced
        start = aggregator.add_event(copy.item.event, cost, is_priced, copy.source)
        rows.event_rows.append(event_row(copy, priced, start, ingested_at, generation, cost))
    rows.window_parts = contributions(aggregator.window_cells(), cell_levels(window_seconds))
    rows.tool_rows = tool_rows(aggregator, generation)
    rows.rejections = list(rejections)
    rows.rejection_rows = [rejection_row(r, ingested_at) for r in rejections]
    return rows


def tombstone_rows(
    copies: Sequence[Copy], rejections: Sequence[Rejection], *, window_seconds: int, rejected_at: datetime
) -> ChunkRows:
    """Rows that empty every tool window a message's copies would fill, plus their dead letters.

    Written when a message is dead-lettered after an attempt may already have written
    some of its tool rows: the empty rows replace them under the same keys. Its window
    cells need nothing: they are written after its events, which were refused.
    """
    aggregator = WindowAggregator(window_seconds)
    for copy in copies:
        aggregator.add_event(copy.item.event, ZERO_COST, True, copy.source)
    rows = ChunkRows()
    rows.tool_rows = [
        (*key[:4], window_seconds, *key[4], 0, 0, [], TOMBSTONE_VERSION) for key, _cell in aggregator.tool_cells()
    ]
    rows.rejections = list(rejections)
    rows.rejection_rows = [rejection_row(r, rejected_at) for r in rejections]
    return rows


def tool_rows(aggregator: WindowAggregator, version: int) -> list[tuple]:
    """The aggregator's tool totals as `TOOL_COLUMNS` rows."""
    seconds = aggregator.window_seconds
    return [(*key[:4], seconds, *key[4], calls, errors, durations, version) for key, (calls, errors, durations) in aggregator.tool_cells()]


def event_row(
    copy: Copy, priced: PricedCost, start: datetime, ingested_at: datetime, generation: int, cost: Decimal | None = None
) -> tuple:
    """One `usage_events` row, in `EVENT_COLUMNS` order (`cost`: the stored cost, if already rounded)."""
    item = copy.item
    e = item.event
    u = e.usage
    origin = item.origin
    # Three tuples joined: as cheap as one literal, and the pricing columns come from
    # `pricing_values`, the one place that orders them.
    return (
        e.event_id,
        e.project_id,
        e.timestamp,
        start,
        e.source,
        e.agent_name,
        e.session_id or "",
        e.handoff_chain,
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
        e.tool_calls_json,
        e.finish_reason or "",
        e.duration_ms,
        e.error,
    ) + pricing_values(priced, cost) + (
        e.provider_cost,
        e.provider_metadata_json,
        e.context_json,
        origin.topic,
        origin.partition,
        origin.offset,
        copy.batch_index,
        copy.fingerprint,
        generation,
        ingested_at,
    )


# Where an event row says which message it came from: (topic, partition, offset).
_SOURCE = slice(EVENT_COLUMNS.index("kafka_topic"), EVENT_COLUMNS.index("kafka_offset") + 1)
assert EVENT_COLUMNS[_SOURCE] == ("kafka_topic", "kafka_partition", "kafka_offset")


def same_message(a: tuple, b: tuple) -> bool:
    """Whether two `usage_events` rows came in one Kafka message (an insert is never cut inside one)."""
    return a[_SOURCE] == b[_SOURCE]


def pricing_values(priced: PricedCost, cost: Decimal | None = None) -> tuple:
    """The `PRICING_COLUMNS` of a row priced as `priced`, in that order."""
    return (
        stored_cost(priced.cost_usd) if cost is None else cost,
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
