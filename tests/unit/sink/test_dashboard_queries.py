"""The dashboard's panel queries as exact SQL strings, and the range/bucket arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stream_app.sink.dashboard_queries import (
    MAX_BUCKETS,
    DashboardFilter,
    bucket_for_span,
    choices_panel,
    cost_over_time_panel,
    panels,
    recent_failures_panel,
    resolve_filter,
    summary_panel,
    tools_panel,
    top_panel,
)

# 2026-11-22T10:00:00Z = 1_795_341_600 (see test_queries.py); one hour later 1_795_345_200.
SINCE, UNTIL = 1_795_341_600, 1_795_345_200
F = DashboardFilter(SINCE, UNTIL, 60)
TIME = "window_start >= toDateTime(1795341600, 'UTC') AND window_start < toDateTime(1795345200, 'UTC')"
SETTINGS = " SETTINGS do_not_merge_across_partitions_select_final = 1"
TOTALS = (
    "sum(events) AS events, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
    "sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd, "
    "sum(unpriced_events) AS unpriced_events, sum(failed_events) AS failed_events, sum(tool_calls) AS tool_calls"
)


def test_summary_reads_project_windows_with_final():
    assert summary_panel("usage", F).sql == (
        f"SELECT {TOTALS} FROM `usage`.usage_window_cells FINAL WHERE grouping = 'project' AND level = 3600 AND {TIME}{SETTINGS}"
    )


def test_summary_for_one_agent_reads_agent_windows():
    f = DashboardFilter(SINCE, UNTIL, 60, project="acme", agent="plan'ner")
    assert summary_panel("usage", f).sql == (
        f"SELECT {TOTALS} FROM `usage`.usage_window_cells FINAL WHERE grouping = 'agent' AND project_id = 'acme' "
        f"AND agent_name = 'plan\\'ner' AND level = 3600 AND {TIME}{SETTINGS}"
    )


def test_cost_over_time_by_model_keeps_the_largest_series():
    assert cost_over_time_panel("usage", DashboardFilter(SINCE, UNTIL, 300)).sql == (
        "SELECT bucket, if(rank <= 8, name, '(other)') AS series, sum(cost_usd) AS cost_usd "
        "FROM (SELECT bucket, name, cost_usd, dense_rank() OVER (ORDER BY total DESC, name) AS rank "
        "FROM (SELECT bucket, name, cost_usd, sum(cost_usd) OVER (PARTITION BY name) AS total FROM ("
        "SELECT toDateTime(intDiv(toUInt32(window_start), 300) * 300, 'UTC') AS bucket, "
        "concat(provider, '/', model) AS name, sum(cost_usd) AS cost_usd FROM `usage`.usage_window_cells FINAL "
        f"WHERE grouping = 'model' AND level = 60 AND {TIME} GROUP BY bucket, name))) "
        f"GROUP BY bucket, series ORDER BY bucket, series{SETTINGS}"
    )


def test_cost_by_agent_names_agents_within_their_project_unless_one_project_is_chosen():
    assert "concat(project_id, '/', agent_name) AS name" in cost_over_time_panel("usage", DashboardFilter(SINCE, UNTIL, 60, stack="agent")).sql
    one = cost_over_time_panel("usage", DashboardFilter(SINCE, UNTIL, 60, project="acme", stack="agent")).sql
    assert "toString(agent_name) AS name" in one and "grouping = 'agent' AND project_id = 'acme'" in one


@pytest.mark.parametrize("panel", [
    lambda f: cost_over_time_panel("usage", f),
    lambda f: top_panel("usage", f, "models"),
    lambda f: top_panel("usage", f, "sessions"),
])
def test_panels_the_windows_cannot_split_by_agent_say_so_instead_of_guessing(panel):
    result = panel(DashboardFilter(SINCE, UNTIL, 60, project="acme", agent="planner"))
    assert result.sql is None and "by project" in result.unavailable


def test_top_agents():
    assert top_panel("usage", F, "agents").sql == (
        f"SELECT project_id, agent_name, {TOTALS} FROM `usage`.usage_window_cells FINAL WHERE grouping = 'agent' AND level = 3600 AND {TIME} "
        f"GROUP BY project_id, agent_name ORDER BY cost_usd DESC, project_id, agent_name LIMIT 10{SETTINGS}"
    )


def test_tools_match_report_group_by_tool():
    assert tools_panel("usage", DashboardFilter(SINCE, UNTIL, 60, project="acme", agent="coder")).sql == (
        "SELECT tool_name, calls, errors, avg_duration_ms, p95_duration_ms FROM (SELECT tool_name, "
        "sum(calls) AS calls, sum(errors) AS errors, sum(length(durations_ms)) AS timed, "
        "if(timed = 0, NULL, avgArray(durations_ms)) AS avg_duration_ms, "
        "if(timed = 0, NULL, quantileExactArray(0.95)(durations_ms)) AS p95_duration_ms "
        "FROM `usage`.usage_tool_windows FINAL WHERE project_id = 'acme' AND agent_name = 'coder' AND "
        f"{TIME} GROUP BY tool_name) ORDER BY calls DESC, tool_name LIMIT 20{SETTINGS}"
    )


def test_recent_failures_are_bounded_to_one_project_and_one_day():
    f = DashboardFilter(UNTIL - 7 * 86_400, UNTIL, 3600, project="acme")
    panel = recent_failures_panel("usage", f)
    assert panel.reads_events
    assert panel.sql == (
        "SELECT timestamp, project_id, agent_name, session_id, provider, model, error, tool_calls "
        "FROM `usage`.usage_events WHERE project_id = 'acme' "
        "AND timestamp >= toDateTime64(1795258800, 6, 'UTC') AND timestamp < toDateTime64(1795345200, 6, 'UTC') "
        "AND (error IS NOT NULL OR position(tool_calls, '\"error\":\"') > 0) "
        "ORDER BY timestamp DESC, event_id LIMIT 1 BY project_id, event_id LIMIT 50"
    )
    assert recent_failures_panel("usage", F).sql is None


def test_filter_menus_are_not_narrowed_by_the_chosen_project():
    assert choices_panel("usage", DashboardFilter(SINCE, UNTIL, 60, project="acme", agent="x")).sql == (
        f"SELECT DISTINCT project_id, agent_name FROM `usage`.usage_window_cells WHERE grouping = 'agent' AND level = 3600 AND {TIME} "
        "ORDER BY project_id, agent_name LIMIT 1000"
    )


def test_only_the_failures_panel_reads_events():
    listed = panels("usage", DashboardFilter(SINCE, UNTIL, 60, project="acme"))
    assert [p.name for p in listed if p.reads_events] == ["recent_failures"]
    assert all("usage_events" not in p.sql for p in listed if p.sql and not p.reads_events)
    assert all(" FINAL" in p.sql for p in listed if p.sql and p.name not in ("recent_failures", "choices"))


@pytest.mark.parametrize(("span", "window", "bucket"), [
    (3600, 60, 60), (86_400, 60, 900), (7 * 86_400, 60, 3 * 3600), (30 * 86_400, 60, 6 * 3600), (3600, 7, 35),
])
def test_bucket_follows_the_range(span, window, bucket):
    assert bucket_for_span(span, window) == bucket
    assert bucket % window == 0 and span / bucket <= MAX_BUCKETS


def test_preset_range_ends_with_the_current_window_and_starts_on_a_bucket():
    now = datetime(2026, 11, 22, 10, 59, 30, tzinfo=UTC)
    f = resolve_filter("24h", now, 60, project="acme")
    assert (f.until, f.bucket_seconds, f.project) == (UNTIL, 900, "acme")
    assert f.since == UNTIL - 86_400 and f.since % 900 == 0


def test_custom_range_is_widened_to_whole_windows():
    f = resolve_filter(
        "custom", datetime.now(UTC), 60,
        since=datetime(2026, 11, 22, 10, 0, 30, tzinfo=UTC), until=datetime(2026, 11, 22, 10, 59, 1, tzinfo=UTC),
    )
    assert (f.since, f.until, f.bucket_seconds) == (SINCE, UNTIL, 60)


@pytest.mark.parametrize("kwargs", [{"range_name": "2h"}, {"range_name": "custom"}, {"range_name": "1h", "stack": "tool"}])
def test_unreadable_filters_are_refused(kwargs):
    with pytest.raises(ValueError):
        resolve_filter(now=datetime.now(UTC), window_seconds=60, **kwargs)
