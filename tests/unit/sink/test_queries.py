"""Billing queries as exact SQL strings, and the rows they return as report records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from stream_app.sink.queries import (
    GROUP_KEYS,
    ReportQuery,
    format_money,
    parse_every,
    report_records,
    report_sql,
    window_range,
)

TOTALS_SQL = (
    "sum(events) AS events, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
    "sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd, sum(unpriced_events) AS unpriced_events"
)
FINAL_SETTINGS = " SETTINGS do_not_merge_across_partitions_select_final = 1"

# 2026-11-22T10:00:00Z is 1_795_341_600 s after the epoch: 2026-01-01 is 1_767_225_600,
# plus 325 days (Jan..Oct = 304, plus 21) * 86_400, plus 10 h.
SINCE = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SINCE_EPOCH = 1_795_341_600
UNTIL = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
UNTIL_EPOCH = 1_795_392_000


def test_report_by_project_of_all_time_reads_day_cells_only():
    assert report_sql("usage", ReportQuery("project"), 60) == (
        f"SELECT project_id, {TOTALS_SQL} FROM `usage`.usage_window_cells FINAL WHERE grouping = 'project' "
        f"AND level = 86400 GROUP BY project_id ORDER BY cost_usd DESC, project_id{FINAL_SETTINGS}"
    )


@pytest.mark.parametrize(
    ("group_by", "keys"),
    [("agent", "project_id, agent_name"), ("session", "project_id, session_id"), ("model", "provider, model")],
)
def test_report_by_each_grouping(group_by, keys):
    assert report_sql("usage", ReportQuery(group_by), 60) == (
        f"SELECT {keys}, {TOTALS_SQL} FROM `usage`.usage_window_cells FINAL WHERE grouping = '{group_by}' "
        f"AND level = 86400 GROUP BY {keys} ORDER BY cost_usd DESC, {keys}{FINAL_SETTINGS}"
    )


def test_report_with_every_filter():
    query = ReportQuery("agent", project="proj-acme", since=SINCE, until=UNTIL)

    assert report_sql("usage", query, 60) == (
        f"SELECT project_id, agent_name, {TOTALS_SQL} FROM `usage`.usage_window_cells FINAL "
        "WHERE grouping = 'agent' AND project_id = 'proj-acme' "
        # 10:00 to midnight: whole hours, no whole day.
        f"AND level = 3600 AND window_start >= toDateTime({SINCE_EPOCH}, 'UTC') AND window_start < toDateTime({UNTIL_EPOCH}, 'UTC') "
        f"GROUP BY project_id, agent_name ORDER BY cost_usd DESC, project_id, agent_name{FINAL_SETTINGS}"
    )


def test_report_every_hour_buckets_whole_windows():
    query = ReportQuery("project", since=SINCE, until=UNTIL, every=3600)

    assert report_sql("usage", query, 60) == (
        "SELECT project_id, toDateTime(intDiv(toUInt32(window_start), 3600) * 3600, 'UTC') AS bucket, "
        f"{TOTALS_SQL} FROM `usage`.usage_window_cells FINAL WHERE grouping = 'project' "
        f"AND level = 3600 AND window_start >= toDateTime({SINCE_EPOCH}, 'UTC') AND window_start < toDateTime({UNTIL_EPOCH}, 'UTC') "
        f"GROUP BY project_id, bucket ORDER BY bucket, cost_usd DESC, project_id{FINAL_SETTINGS}"
    )
    assert query.columns[:2] == ("project_id", "window_start")


def test_a_range_reads_whole_days_whole_hours_and_single_windows():
    query = ReportQuery("session", project="p", since=SINCE - timedelta(days=2, minutes=5), until=UNTIL + timedelta(minutes=2))

    sql = report_sql("usage", query, 60)

    day = 86_400
    assert (
        f"AND ((level = 60 AND window_start >= toDateTime({SINCE_EPOCH - 2 * day - 300}, 'UTC') "
        f"AND window_start < toDateTime({SINCE_EPOCH - 2 * day}, 'UTC')) "
        f"OR (level = 3600 AND window_start >= toDateTime({SINCE_EPOCH - 2 * day}, 'UTC') "
        f"AND window_start < toDateTime({UNTIL_EPOCH - 2 * day}, 'UTC')) "
        f"OR (level = 86400 AND window_start >= toDateTime({UNTIL_EPOCH - 2 * day}, 'UTC') "
        f"AND window_start < toDateTime({UNTIL_EPOCH}, 'UTC')) "
        f"OR (level = 60 AND window_start >= toDateTime({UNTIL_EPOCH}, 'UTC') "
        f"AND window_start < toDateTime({UNTIL_EPOCH + 120}, 'UTC'))) GROUP BY"
    ) in sql


def test_buckets_read_only_levels_that_divide_them():
    sql = report_sql("usage", ReportQuery("project", since=SINCE, until=UNTIL, every=300), 60)

    assert "level = 60 AND window_start" in sql and "level = 3600" not in sql


def test_report_by_tool():
    assert report_sql("usage", ReportQuery("tool", project="p"), 60) == (
        "SELECT project_id, tool_name, calls, errors, avg_duration_ms, p95_duration_ms FROM ("
        "SELECT project_id, tool_name, sum(calls) AS calls, sum(errors) AS errors, sum(length(durations_ms)) AS timed, "
        "if(timed = 0, NULL, avgArray(durations_ms)) AS avg_duration_ms, "
        "if(timed = 0, NULL, quantileExactArray(0.95)(durations_ms)) AS p95_duration_ms "
        "FROM `usage`.usage_tool_windows FINAL WHERE project_id = 'p' GROUP BY project_id, tool_name) "
        f"ORDER BY calls DESC, project_id, tool_name{FINAL_SETTINGS}"
    )
    assert ReportQuery("tool").columns == ("project_id", "tool_name", "calls", "errors", "avg_duration_ms", "p95_duration_ms")


@pytest.mark.parametrize(
    ("since", "until", "size", "expected"),
    [
        # Whole windows that overlap [since, until): since rounds down, until rounds up.
        (SINCE + timedelta(seconds=30), UNTIL - timedelta(seconds=30), 60, (SINCE_EPOCH, UNTIL_EPOCH)),
        (SINCE, UNTIL, 60, (SINCE_EPOCH, UNTIL_EPOCH)),
        (SINCE + timedelta(microseconds=1), UNTIL + timedelta(microseconds=1), 60, (SINCE_EPOCH, UNTIL_EPOCH + 60)),
        (SINCE + timedelta(minutes=7), UNTIL - timedelta(minutes=7), 300, (SINCE_EPOCH + 300, UNTIL_EPOCH - 300)),
    ],
)
def test_window_range_widens_to_whole_windows(since, until, size, expected):
    assert window_range(ReportQuery("project", since=since, until=until), size) == expected


def test_every_selects_whole_buckets():
    query = ReportQuery("project", since=SINCE + timedelta(minutes=30), until=SINCE + timedelta(minutes=90), every=3600)

    assert window_range(query, 60) == (SINCE_EPOCH, SINCE_EPOCH + 7200)


@pytest.mark.parametrize(("text", "seconds"), [("1m", 60), ("5m", 300), ("1h", 3600), ("1d", 86_400), ("120s", 120)])
def test_parse_every(text, seconds):
    assert parse_every(text, 60) == seconds


@pytest.mark.parametrize("text", ["90s", "0m", "m", "5x", "-1h", "1.5h"])
def test_parse_every_refuses_what_is_not_a_whole_number_of_windows(text):
    with pytest.raises(ValueError, match="--every"):
        parse_every(text, 60)


def test_project_with_quote_and_backslash_is_escaped():
    sql = report_sql("usage", ReportQuery("project", project="o'brien\\x"), 60)

    # ClickHouse string literal: \' for the quote, \\ for the backslash.
    assert "AND project_id = 'o\\'brien\\\\x' AND level" in sql


def test_project_injection_attempt_stays_inside_the_literal():
    sql = report_sql("usage", ReportQuery("project", project="x' OR 1=1 --"), 60)

    assert "AND project_id = 'x\\' OR 1=1 --' AND level" in sql


def test_database_name_is_quoted_as_an_identifier():
    sql = report_sql("bill`ing", ReportQuery("project"), 60)

    assert " FROM `bill\\`ing`.usage_window_cells FINAL " in sql


def test_naive_time_filter_is_refused():
    with pytest.raises(ValueError, match="no UTC offset"):
        report_sql("usage", ReportQuery("project", since=datetime(2026, 11, 22, 10, 0)), 60)


def test_unknown_group_by_is_refused():
    with pytest.raises(ValueError, match="group_by must be one of project, agent, session, model, tool"):
        ReportQuery("tenant")


def test_since_must_be_before_until():
    with pytest.raises(ValueError, match="is not before"):
        ReportQuery("project", since=UNTIL, until=SINCE)


def test_group_keys_are_the_spec_ones():
    assert GROUP_KEYS == {
        "project": ("project_id",),
        "agent": ("project_id", "agent_name"),
        "session": ("project_id", "session_id"),
        "model": ("provider", "model"),
        "tool": ("project_id", "tool_name"),
    }


# --- records ----------------------------------------------------------------------------


def test_report_records_for_sessions():
    query = ReportQuery("session")
    rows = [
        ("proj-acme", "sess-1", 3, 3600, 1050, 2400, 0, 7, Decimal("0.000990000000000000"), 1),
        ("proj-acme", "", 1, 10, 5, 0, 0, 0, Decimal("0E-18"), 1),
    ]

    assert report_records(query, rows) == [
        {
            "project_id": "proj-acme", "session_id": "sess-1", "events": 3, "input_tokens": 3600,
            "output_tokens": 1050, "cache_read_tokens": 2400, "cache_write_tokens": 0,
            "reasoning_tokens": 7, "cost_usd": "0.00099", "unpriced_events": 1,
        },
        {
            "project_id": "proj-acme", "session_id": None, "events": 1, "input_tokens": 10,
            "output_tokens": 5, "cache_read_tokens": 0, "cache_write_tokens": 0,
            "reasoning_tokens": 0, "cost_usd": "0", "unpriced_events": 1,
        },
    ]


def test_report_records_for_models_keep_cost_a_string():
    (record,) = report_records(ReportQuery("model"), [("openai", "gpt-4o", 2, 1, 2, 0, 0, 0, Decimal("12.500000000000000000"), 0)])

    assert record["cost_usd"] == "12.5"
    assert (record["provider"], record["model"]) == ("openai", "gpt-4o")
    assert "session_id" not in record


def test_empty_agent_name_is_not_turned_into_null():
    # Only a missing session means "no value"; agent_name is required on every event.
    (record,) = report_records(ReportQuery("agent"), [("p", "", 1, 0, 0, 0, 0, 0, Decimal(0), 0)])

    assert record["agent_name"] == ""


def test_report_records_reject_a_row_of_the_wrong_shape():
    with pytest.raises(ValueError):
        report_records(ReportQuery("project"), [("p", 1, 2, 3)])


def test_report_records_with_buckets_and_tools():
    rows = [("p", "search", datetime(2026, 11, 22, 10, 0), 3, 1, 12.5, 20.0), ("p", "x", datetime(2026, 11, 22, 11, 0), 1, 0, None, None)]

    records = report_records(ReportQuery("tool", every=3600), rows)

    assert records == [
        {"project_id": "p", "tool_name": "search", "window_start": "2026-11-22T10:00:00Z", "calls": 3, "errors": 1,
         "avg_duration_ms": 12.5, "p95_duration_ms": 20.0},
        {"project_id": "p", "tool_name": "x", "window_start": "2026-11-22T11:00:00Z", "calls": 1, "errors": 0,
         "avg_duration_ms": None, "p95_duration_ms": None},
    ]


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("7.5E-8"), "0.000000075"),
        (Decimal("0E-18"), "0"),
        (Decimal("0"), "0"),
        (Decimal("0.000990000000000000"), "0.00099"),
        (Decimal("10.50"), "10.5"),
        (Decimal("100"), "100"),
        (Decimal("1E+2"), "100"),
        (Decimal("12.500000000000000000"), "12.5"),
        (Decimal("99999999999999999999.999999999999999999"), "99999999999999999999.999999999999999999"),
        (Decimal("0.000000000000000001"), "0.000000000000000001"),
    ],
)
def test_format_money(amount, text):
    assert format_money(amount) == text


def test_report_json_spells_the_records_in_the_engine_and_keeps_the_order():
    from stream_app.sink.queries import report_json_sql

    sql = report_json_sql("usage", ReportQuery("session", every=3600), 60)

    assert sql.startswith(
        "SELECT r.project_id AS project_id, nullIf(r.session_id, '') AS session_id, "
        "formatDateTime(r.bucket, '%Y-%m-%dT%H:%i:%SZ', 'UTC') AS window_start, r.events AS events,"
    )
    assert "toString(r.cost_usd) AS cost_usd" in sql
    # Ordered by the numbers, not by the strings they are spelled as.
    assert ") AS r ORDER BY r.bucket, r.cost_usd DESC, r.project_id, r.session_id SETTINGS " in sql
    assert sql.endswith("output_format_decimal_trailing_zeros = 0, do_not_merge_across_partitions_select_final = 1, max_threads = 1")
