"""A store written by the first release upgrades in place and keeps its totals exactly.

The first release's store is built here with its own schema (migrations 1 and 2, still
shipped) and rows in its own layout, including an event stored twice with different
`ingested_at` (its wall-clock winner is what it billed). Opening it with this release
runs migration 3; every total and every window bucket must be what the old store said.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from stream_app.core.billable import compact_json
from stream_app.sink import clickhouse
from stream_app.sink.queries import ReportQuery
from stream_app.sink.schema import migrations
from stream_app.sink.upgrade import OLD_EVENTS
from tests.factories import varied_events
from tests.integration.sink.test_clickhouse_sink import open_sink  # noqa: F401 - the fixture
from tests.integration.sink.test_clickhouse_sink import messages_of, process

pytestmark = pytest.mark.integration

OLD_COLUMNS = (
    "event_id", "project_id", "timestamp", "window_start", "source", "agent_name", "session_id", "handoff_chain",
    "operation", "method", "provider", "model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "tool_call_count", "tool_calls", "finish_reason", "duration_ms", "error",
    "cost_usd", "price_status", "price_source", "catalog_provider", "catalog_model", "price_detail",
    "provider_cost_usd", "provider_metadata", "context", "kafka_topic", "kafka_partition", "kafka_offset", "ingested_at",
)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def first_release_rows(events) -> list[list]:
    rows = []
    for i, e in enumerate(events):
        u = e.usage
        cost = Decimal(u.input_tokens) * Decimal("0.0000025")
        rows.append([
            e.event_id, e.project_id, e.timestamp, datetime.fromtimestamp(int(e.timestamp.timestamp()) // 60 * 60, UTC),
            e.source, e.agent_name, e.session_id or "", list(e.handoff_chain), e.operation or "", e.method, e.provider,
            e.model, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens,
            len(e.tool_calls), compact_json([t.model_dump(mode="json") for t in e.tool_calls]), e.finish_reason or "",
            e.duration_ms, e.error, cost, "priced", "genai-prices 0.2.3", "openai", e.model, "", e.provider_cost,
            compact_json(e.provider_metadata), compact_json(e.context), "llm.usage.events", i % 4, i // 7, NOW,
        ])
    return rows


def old_totals(sink, group: str) -> dict:
    rows = sink.query_rows(
        f"SELECT {group}, count(), sum(input_tokens), sum(output_tokens), toString(sum(cost_usd)) "
        f"FROM usage.{OLD_EVENTS if sink_has(sink, OLD_EVENTS) else 'usage_events'} FINAL GROUP BY {group}"
    )
    return {tuple(r[:-4]): (r[-4], r[-3], r[-2], Decimal(r[-1])) for r in rows}


def sink_has(sink, table: str) -> bool:
    return bool(sink.query_rows(f"SELECT 1 FROM system.tables WHERE database = 'usage' AND name = '{table}'"))


def new_totals(sink, group_by: str, keys: tuple[str, ...], **query) -> dict:
    return {
        tuple(r[k] for k in keys): (r["events"], r["input_tokens"], r["output_tokens"], Decimal(r["cost_usd"]))
        for r in sink.report(ReportQuery(group_by, **query))
    }


def test_a_first_release_store_upgrades_in_place_with_exact_totals(open_sink, monkeypatch):
    events = varied_events(600, seed=41, now=NOW, spread_seconds=7200)
    # The first release's schema: its two migrations, and no store_info table.
    monkeypatch.setattr(clickhouse, "migrations", lambda database: migrations(database)[:2])
    monkeypatch.setattr(clickhouse.ClickHouseSink, "_agree_on_window_size", lambda self: None)
    monkeypatch.setattr(clickhouse.ClickHouseSink, "_has_events_table", lambda self: True)  # migrate step by step
    old = open_sink("old")
    rows = first_release_rows(events)
    old.client.insert("usage_events", rows, column_names=list(OLD_COLUMNS), database="usage")
    # A re-send the first release stored twice: the later ingested_at won there, and must win here.
    resent = list(rows[0])
    resent[OLD_COLUMNS.index("input_tokens")] += 1_000
    resent[OLD_COLUMNS.index("cost_usd")] += Decimal("0.0025")
    resent[OLD_COLUMNS.index("ingested_at")] = NOW + timedelta(minutes=5)
    old.client.insert("usage_events", [resent], column_names=list(OLD_COLUMNS), database="usage")
    expected = {
        "project": old_totals(old, "project_id"),
        "agent": old_totals(old, "project_id, agent_name"),
        "model": old_totals(old, "provider, model"),
        "minute": old_totals(old, "project_id, window_start"),
    }
    assert sum(v[0] for v in expected["project"].values()) == 600
    old.close()
    monkeypatch.undo()

    upgraded = open_sink("old")

    assert sorted(upgraded.query_rows("SELECT version FROM usage.schema_migrations FINAL")) == [(1,), (2,), (3,), (4,)]
    assert not sink_has(upgraded, OLD_EVENTS)
    assert not sink_has(upgraded, "usage_windows") and sink_has(upgraded, "usage_window_cells")
    assert new_totals(upgraded, "project", ("project_id",)) == expected["project"]
    assert new_totals(upgraded, "agent", ("project_id", "agent_name")) == expected["agent"]
    assert new_totals(upgraded, "model", ("provider", "model")) == expected["model"]
    by_minute = {
        (p, datetime.fromisoformat(w.replace("Z", "+00:00")).replace(tzinfo=None)): v
        for (p, w), v in new_totals(upgraded, "project", ("project_id", "window_start"), every=60).items()
    }
    assert by_minute == {(p, w.replace(tzinfo=None)): v for (p, w), v in expected["minute"].items()}

    # Billed as before: a re-send of an upgraded event is a duplicate, not a second bill,
    # whatever message it comes in; a changed one is a conflicting duplicate.
    again = process(upgraded, messages_of([events[5], events[6].model_copy(update={"agent_name": "someone-else"})]))
    assert (again.rows.events, again.duplicates, len(again.dead_letters)) == (0, 1, 1)
    assert new_totals(upgraded, "project", ("project_id",)) == expected["project"]


def test_upgrading_twice_is_harmless(open_sink):
    sink = open_sink("fresh")
    process(sink, messages_of(varied_events(50, seed=3, now=NOW)))
    before = sink.report(ReportQuery("agent"))

    from stream_app.sink.cell_rebuild import upgrade_to_window_cells
    from stream_app.sink.upgrade import upgrade_to_message_windows

    upgrade_to_message_windows(sink.client, "usage", 60)
    upgrade_to_window_cells(sink.client, "usage", 60)  # cells rebuilt from events: the same totals

    assert sink.report(ReportQuery("agent")) == before
    # ...and the worker folds on top of rebuilt cells as on its own.
    process(sink, messages_of(varied_events(40, seed=4, now=NOW)))
    assert sum(r["events"] for r in sink.report(ReportQuery("project"))) == 90
    assert sum(r["events"] for r in sink.report(ReportQuery("session", every=60))) == 90
