"""Key look-ups and per-message window rebuilds, as exact SQL strings."""

from __future__ import annotations

from stream_app.sink.lookups import IDS_PER_STATEMENT, lookup_statements, stored_content_statements
from stream_app.sink.message_windows import message_tool_windows_insert_sql, message_windows_insert_sql


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


def test_message_windows_rebuild_sums_like_the_aggregator_and_takes_the_newest_generation():
    sql = message_windows_insert_sql("usage", "project_id = 'p'", window_seconds=60)

    assert sql.startswith("INSERT INTO `usage`.usage_windows (grouping, project_id, agent_name, session_id, provider, model,")
    assert "count(), sum(input_tokens), sum(output_tokens)" in sql
    assert "countIf(price_status != 'priced'), countIf(error IS NOT NULL),\n    sum(tool_call_count), max(price_generation)" in sql
    assert "FROM `usage`.usage_events FINAL WHERE project_id = 'p'" in sql
    assert "GROUP BY g, ev_project, ev_window, ev_topic, ev_partition, ev_offset" in sql


def test_tool_windows_rebuild_keeps_every_duration():
    sql = message_tool_windows_insert_sql("usage", "", window_seconds=300)

    assert "groupArrayIf(JSONExtractFloat(t, 'duration_ms')" in sql
    assert "FROM `usage`.usage_events FINAL\n)" in sql  # no filter: every message
    assert ", 300,\n" in sql


def test_keys_of_many_projects_share_a_statement():
    (sql,) = lookup_statements("usage", {"b": ["2"], "a": ["1", "3"]})

    assert "WHERE (project_id, event_id) IN (('a', '1'), ('a', '3'), ('b', '2')) ORDER BY" in sql
