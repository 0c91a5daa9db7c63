"""Hundreds of thousands of sub-micro-dollar costs, priced, stored and summed in ClickHouse, to the last digit.

Each event costs less than a millionth of a dollar (a few gpt-5-nano, gpt-4o-mini or
deepseek-chat tokens), priced by the real pricer, written through the sink's own chunk
path into the real engine (embedded chDB) with their per-message window rows from the
core's own aggregator, then summed by SQL, by `report` (which reads the windows). Every total equals the Decimal sum computed here; a float sum of the
same costs does not.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from stream_app.core.pricing import CatalogPricer, TokenCounts, stored_cost
from stream_app.core.rows import EVENT_COLUMNS, ChunkRows
from stream_app.core.window_cells import cell_levels, contributions
from stream_app.core.windows import Counted, Source, WindowAggregator
from stream_app.sink.queries import ReportQuery
from tests.integration.pricing.conftest import WINDOW

pytestmark = pytest.mark.integration

EVENTS = 400_000
CHUNK = 50_000
PROJECTS = ("proj-a", "proj-b", "proj-c")
START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
# (provider, model, counts(i)) — every cost below $0.000001:
#   gpt-5-nano  $0.05 in / $0.40 out: ≤ 11×0.05 + 1×0.4 = 0.95 µ$
#   gpt-4o-mini $0.15 in:              ≤ 6×0.15           = 0.90 µ$
#   deepseek-chat $0.27 in, $0.07 cached (peak) or $0.135 / $0.035: ≤ 1×0.27 + 9×0.07 = 0.90 µ$
CALLS = (
    ("openai", "gpt-5-nano", lambda i: TokenCounts(i % 11 + 1, 0, 0, i % 2)),
    ("openai", "gpt-4o-mini", lambda i: TokenCounts(i % 6 + 1, 0, 0, 0)),
    ("deepseek", "deepseek-chat", lambda i: TokenCounts(i % 10 + 1, i % 10, 0, 0)),
)


def stored_row(values: dict) -> tuple:
    return tuple(values[name] for name in EVENT_COLUMNS)


def chunks(pricer: CatalogPricer, expected: dict[str, Decimal]):
    """Chunks of rows as the worker writes them, and the exact expected cost per project."""
    ingested = START + timedelta(days=1)
    counter = itertools.count()
    for _ in range(EVENTS // CHUNK):
        chunk = ChunkRows()
        aggregator = WindowAggregator(WINDOW)
        for _ in range(CHUNK):
            i = next(counter)
            provider, model, counts_of = CALLS[i % len(CALLS)]
            counts = counts_of(i)
            project = PROJECTS[i % len(PROJECTS)]
            at = START + timedelta(microseconds=i * 60_000)  # 400,000 events over 400 windows
            window = START + timedelta(seconds=i * 60_000 // 1_000_000 // WINDOW * WINDOW)
            priced = pricer.price_usage(provider, model, project, at, counts)
            assert priced.status == "priced" and 0 < priced.cost_usd < Decimal("0.000001")
            cost = stored_cost(priced.cost_usd)
            expected[project] += cost
            chunk.event_rows.append(
                stored_row(
                    {
                        "event_id": str(uuid.UUID(int=i)), "project_id": project, "timestamp": at, "window_start": window,
                        "source": "bench", "agent_name": "agent", "session_id": "", "handoff_chain": [], "operation": "",
                        "method": "generate", "provider": provider, "model": model,
                        "input_tokens": counts.input, "output_tokens": counts.output, "cache_read_tokens": counts.cache_read,
                        "cache_write_tokens": 0, "reasoning_tokens": 0, "tool_call_count": 0, "tool_calls": "[]",
                        "finish_reason": "", "duration_ms": None, "error": None, "cost_usd": cost,
                        "price_status": priced.status, "price_source": priced.source,
                        "catalog_provider": priced.catalog_provider, "catalog_model": priced.catalog_model,
                        "price_detail": priced.detail, "provider_cost_usd": None, "provider_metadata": "{}",
                        "context": "{}", "kafka_topic": "t", "kafka_partition": 0, "kafka_offset": i // 500,
                        "batch_index": i % 500, "fingerprint": 0, "price_generation": 0, "ingested_at": ingested,
                    }
                )
            )
            counted = Counted(
                project, "agent", "", provider, model, at, counts.input, counts.output, counts.cache_read, 0, 0, False, ()
            )
            aggregator.add(counted, cost, True, Source("t", 0, i // 500))
        chunk.window_parts = contributions(aggregator.window_cells(), cell_levels(60))
        yield chunk


def test_many_sub_micro_dollar_costs_sum_exactly(open_sink):
    sink = open_sink()
    pricer = CatalogPricer()
    expected = dict.fromkeys(PROJECTS, Decimal(0))
    float_total = 0.0

    for chunk in chunks(pricer, expected):
        sink.write_rows(chunk)
        float_total += sum(float(row[EVENT_COLUMNS.index("cost_usd")]) for row in chunk.event_rows)

    total = sum(expected.values(), Decimal(0))
    assert Decimal(repr(float_total)) != total  # a float sum of the same costs drifts

    # SQL over the deduplicated events, as a decimal string (never through a float).
    ((events, summed),) = sink.query_rows("SELECT count(), toString(sum(cost_usd)) FROM usage.usage_events FINAL")
    assert events == EVENTS
    assert Decimal(summed) == total

    # `report`: per project and in total, as the JSON decimal strings it prints.
    records = sink.report(ReportQuery("project"))
    assert {r["project_id"]: Decimal(r["cost_usd"]) for r in records} == expected
    assert sum(r["events"] for r in records) == EVENTS

    # Every grouping of the windows holds the same money.
    for grouping in ("project", "agent", "session", "model"):
        ((windowed, windows),) = sink.query_rows(
            "SELECT toString(sum(cost_usd)), uniqExact(project_id, window_start) FROM usage.usage_window_cells FINAL "
            f"WHERE grouping = '{grouping}' AND level = 60"
        )
        assert Decimal(windowed) == total
        assert windows == len(PROJECTS) * (EVENTS // 1_000)  # one event every 60 ms: 1,000 per minute
