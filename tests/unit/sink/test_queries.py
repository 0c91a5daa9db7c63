"""Billing queries as exact SQL strings, and the rows they return as report records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from stream_app.sink.queries import GROUP_KEYS, ReportQuery, format_money, report_records, report_sql

TOTALS_SQL = (
    "count() AS events, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
    "sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd, "
    "countIf(price_status != 'priced') AS unpriced_events"
)

# 2026-11-22T10:00:00Z is 1_795_341_600 s after the epoch: 2026-01-01 is 1_767_225_600,
# plus 325 days (Jan..Oct = 304, plus 21) * 86_400, plus 10 h.
SINCE = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SINCE_MICROS = "1795341600000000"
UNTIL = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
UNTIL_MICROS = "1795392000000000"


def test_report_by_project():
    assert report_sql("usage", ReportQuery("project")) == (
        f"SELECT project_id, {TOTALS_SQL} FROM `usage`.usage_events FINAL "
        "GROUP BY project_id ORDER BY cost_usd DESC, project_id"
    )


def test_report_by_agent():
    assert report_sql("usage", ReportQuery("agent")) == (
        f"SELECT project_id, agent_name, {TOTALS_SQL} FROM `usage`.usage_events FINAL "
        "GROUP BY project_id, agent_name ORDER BY cost_usd DESC, project_id, agent_name"
    )


def test_report_by_session():
    assert report_sql("usage", ReportQuery("session")) == (
        f"SELECT project_id, session_id, {TOTALS_SQL} FROM `usage`.usage_events FINAL "
        "GROUP BY project_id, session_id ORDER BY cost_usd DESC, project_id, session_id"
    )


def test_report_by_model():
    assert report_sql("usage", ReportQuery("model")) == (
        f"SELECT provider, model, {TOTALS_SQL} FROM `usage`.usage_events FINAL "
        "GROUP BY provider, model ORDER BY cost_usd DESC, provider, model"
    )


def test_report_with_every_filter():
    query = ReportQuery("agent", project="proj-acme", since=SINCE, until=UNTIL)

    assert report_sql("usage", query) == (
        f"SELECT project_id, agent_name, {TOTALS_SQL} FROM `usage`.usage_events FINAL "
        "WHERE project_id = 'proj-acme' "
        f"AND timestamp >= fromUnixTimestamp64Micro({SINCE_MICROS}, 'UTC') "
        f"AND timestamp < fromUnixTimestamp64Micro({UNTIL_MICROS}, 'UTC') "
        "GROUP BY project_id, agent_name ORDER BY cost_usd DESC, project_id, agent_name"
    )


def test_report_with_only_project():
    assert report_sql("usage", ReportQuery("project", project="p")) == (
        f"SELECT project_id, {TOTALS_SQL} FROM `usage`.usage_events FINAL WHERE project_id = 'p' "
        "GROUP BY project_id ORDER BY cost_usd DESC, project_id"
    )


def test_report_with_only_until():
    assert report_sql("usage", ReportQuery("model", until=UNTIL)) == (
        f"SELECT provider, model, {TOTALS_SQL} FROM `usage`.usage_events FINAL "
        f"WHERE timestamp < fromUnixTimestamp64Micro({UNTIL_MICROS}, 'UTC') "
        "GROUP BY provider, model ORDER BY cost_usd DESC, provider, model"
    )


def test_project_with_quote_and_backslash_is_escaped():
    sql = report_sql("usage", ReportQuery("project", project="o'brien\\x"))

    # ClickHouse string literal: \' for the quote, \\ for the backslash.
    assert sql == (
        f"SELECT project_id, {TOTALS_SQL} FROM `usage`.usage_events FINAL "
        "WHERE project_id = 'o\\'brien\\\\x' "
        "GROUP BY project_id ORDER BY cost_usd DESC, project_id"
    )


def test_project_injection_attempt_stays_inside_the_literal():
    sql = report_sql("usage", ReportQuery("project", project="x' OR 1=1 --"))

    assert "WHERE project_id = 'x\\' OR 1=1 --' GROUP BY" in sql


def test_database_name_is_quoted_as_an_identifier():
    sql = report_sql("bill`ing", ReportQuery("project"))

    assert " FROM `bill\\`ing`.usage_events FINAL " in sql


def test_since_with_microseconds_and_an_offset():
    # 12:00:00.123456+02:00 is 10:00:00.123456 UTC.
    since = datetime(2026, 11, 22, 12, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))

    sql = report_sql("usage", ReportQuery("project", since=since))

    assert "timestamp >= fromUnixTimestamp64Micro(1795341600123456, 'UTC')" in sql


def test_naive_time_filter_is_refused():
    with pytest.raises(ValueError, match="no UTC offset"):
        report_sql("usage", ReportQuery("project", since=datetime(2026, 11, 22, 10, 0)))


def test_unknown_group_by_is_refused():
    with pytest.raises(ValueError, match="group_by must be one of project, agent, session, model"):
        ReportQuery("tenant")


def test_group_keys_are_the_spec_ones():
    assert GROUP_KEYS == {
        "project": ("project_id",),
        "agent": ("project_id", "agent_name"),
        "session": ("project_id", "session_id"),
        "model": ("provider", "model"),
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
