"""Key look-ups, cell look-ups and rebuilds from events, as exact SQL strings."""

from __future__ import annotations

from datetime import UTC, date, datetime

from stream_app.core.window_cells import CellKey
from stream_app.sink.cell_rebuild import cells_from_events_sql, day_batches
from stream_app.sink.lookups import (
    CELLS_PER_STATEMENT,
    IDS_PER_STATEMENT,
    lookup_statements,
    stored_cell_statements,
    stored_content_statements,
)
from stream_app.sink.message_windows import message_tool_windows_insert_sql


def test_lookup_reads_the_key_range_of_each_project_only():
    (sql,) = lookup_statements("usage", {"p'1": ["a", "b"]})

    assert sql == (
        "SELECT project_id, event_id, kafka_topic, kafka_partition, kafka_offset, batch_index, fingerprint "
        "FROM `usage`.usage_events WHERE project_id = 'p\\'1' AND event_id IN ('a', 'b') "
        "ORDER BY price_generation DESC LIMIT 1 BY project_id, event_id"
    )
    assert "FINAL" not in sql


def test_a_large_spread_out_chunk_becomes_bounded_statements():
    # A month of backfill in one chunk: the statements grow in number, never in size.
    ids = [f"0198c0de-{i:04x}-7000-8000-{i:012x}" for i in range(2 * IDS_PER_STATEMENT + 5)]

    statements = list(lookup_statements("usage", {"big": ids, "small": ["x"]}))

    assert len(statements) == 3
    assert max(len(s) for s in statements) < 100_000  # max_query_size is 262,144 bytes
    listed = [i for s in statements for i in ids if f"'{i}'" in s]
    assert sorted(listed) == sorted(ids)


def test_stored_content_statements_select_every_compared_column():
    (sql,) = stored_content_statements("usage", {"p": ["e"]})

    assert sql.startswith("SELECT project_id, event_id, timestamp, source, agent_name, session_id, handoff_chain,")
    assert "provider_cost_usd, provider_metadata, context FROM `usage`.usage_events WHERE project_id = 'p'" in sql


def test_cells_rebuild_sums_like_the_aggregator_and_keeps_the_stored_coverage():
    sql = cells_from_events_sql("usage", "p'1", date(2026, 1, 30), date(2026, 2, 1), (60, 3600, 86400))

    assert sql.startswith("INSERT INTO `usage`.usage_window_cells (level, grouping, project_id, agent_name,")
    # Jan 30 00:00 .. Feb 2 00:00 UTC, one project, events and cells alike.
    window = "project_id = 'p\\'1' AND window_start >= toDateTime(1769731200, 'UTC') AND window_start < toDateTime(1769990400, 'UTC')"
    assert f"FROM `usage`.usage_events FINAL WHERE {window}" in sql
    assert f"FROM `usage`.usage_window_cells WHERE {window}" in sql
    assert "ARRAY JOIN [60, 3600, 86400] AS lvl" in sql
    assert "greatest(a.from_events, c.covered_until) AS covered" in sql
    assert "countIf(price_status != 'priced') AS unpriced_events, countIf(error IS NOT NULL) AS failed_events" in sql


def test_rebuilds_go_in_runs_of_consecutive_days_of_bounded_size():
    days = [("a", date(2026, 1, 1), 5), ("a", date(2026, 1, 2), 5), ("a", date(2026, 1, 4), 1),
            ("b", date(2026, 1, 5), 20), ("b", date(2026, 1, 6), 1)]

    assert list(day_batches(days, limit=10)) == [
        ("a", date(2026, 1, 1), date(2026, 1, 2)),
        ("a", date(2026, 1, 4), date(2026, 1, 4)),
        ("b", date(2026, 1, 5), date(2026, 1, 5)),
        ("b", date(2026, 1, 6), date(2026, 1, 6)),
    ]


def _cell(i: int, level: int = 60) -> CellKey:
    start = datetime(2026, 1, 1, 0, i % 60, tzinfo=UTC)
    return CellKey(level, "session", "p", "", f"s{i}", "", "", start, "usage-events", i % 3)


def test_cell_lookups_name_the_key_prefixes_and_stay_bounded():
    statements = list(stored_cell_statements("usage", [_cell(i) for i in range(2 * CELLS_PER_STATEMENT + 1)]))

    assert len(statements) == 3
    assert max(len(s) for s in statements) < 200_000
    first = statements[0]
    assert "FROM `usage`.usage_window_cells WHERE (level, grouping, project_id, window_start) IN ((60, 'session', 'p', 1767225600)" in first
    assert "AND (agent_name, session_id, provider, model, src_topic, src_partition) IN (('', 's0', '', '', 'usage-events', 0)" in first
    assert "FINAL" not in first  # every version comes back; the highest wins in Python


def test_tool_windows_rebuild_keeps_every_duration():
    sql = message_tool_windows_insert_sql("usage", "", window_seconds=300)

    assert "groupArrayIf(JSONExtractFloat(t, 'duration_ms')" in sql
    assert "FROM `usage`.usage_events FINAL\n)" in sql  # no filter: every message
    assert ", 300,\n" in sql


def test_keys_of_many_projects_share_a_statement():
    (sql,) = lookup_statements("usage", {"b": ["2"], "a": ["1", "3"]})

    assert "WHERE (project_id, event_id) IN (('a', '1'), ('a', '3'), ('b', '2')) ORDER BY" in sql
