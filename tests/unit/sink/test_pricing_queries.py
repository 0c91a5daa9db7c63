"""Pricing queries (`prices missing|compare`, `reprice`) as exact SQL strings, and their records."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from stream_app.core.repricing import ProjectChange, RepriceSummary
from stream_app.core.rows import EVENT_COLUMNS
from stream_app.sink.queries import (
    scope_conditions,
    MISSING_PRICE_COLUMNS,
    EventScope,
    missing_prices_sql,
    pricing_records,
    provider_cost_sql,
    reprice_page_sql,
    reprice_record,
)
from stream_app.sink.cell_rebuild import stale_days_sql

# 2026-11-22T10:00:00Z is 1_795_341_600 s after the epoch; 2026-11-23T00:00:00Z is 1_795_392_000.
SINCE = datetime(2026, 11, 22, 10, 0, 30, tzinfo=UTC)
UNTIL = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
SCOPE = EventScope(project="o'x", since=SINCE, until=UNTIL)
SCOPE_SQL = (
    "project_id = 'o\\'x' AND timestamp >= fromUnixTimestamp64Micro(1795341630000000, 'UTC') "
    "AND timestamp < fromUnixTimestamp64Micro(1795392000000000, 'UTC')"
)


def test_missing_prices_sql():
    assert missing_prices_sql("usage", EventScope()) == (
        "SELECT provider, model, price_status, count() AS events, uniqExact(project_id) AS projects, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
        "sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd, "
        "sum(provider_cost_usd) AS provider_cost_usd, min(timestamp) AS first_seen, max(timestamp) AS last_seen, "
        "min(price_detail) AS detail "
        "FROM `usage`.usage_events FINAL WHERE price_status != 'priced' "
        "GROUP BY provider, model, price_status ORDER BY events DESC, provider, model, price_status"
    )


def test_missing_prices_sql_in_a_scope():
    assert f"WHERE price_status != 'priced' AND {SCOPE_SQL} GROUP BY" in missing_prices_sql("usage", SCOPE)


def test_provider_cost_sql():
    assert provider_cost_sql("billing", SCOPE) == (
        "SELECT provider, model, count() AS events, sum(ours) AS cost_usd, sum(theirs) AS provider_cost_usd, "
        "cost_usd - provider_cost_usd AS difference_usd, countIf(status != 'priced') AS not_priced_events "
        "FROM (SELECT provider, model, cost_usd AS ours, assumeNotNull(provider_cost_usd) AS theirs, "
        f"price_status AS status FROM `billing`.usage_events FINAL WHERE provider_cost_usd IS NOT NULL AND {SCOPE_SQL}) "
        "GROUP BY provider, model ORDER BY abs(difference_usd) DESC, provider, model"
    )


def test_reprice_first_page_sql():
    assert reprice_page_sql("usage", SCOPE, None, 500) == (
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM `usage`.usage_events FINAL WHERE {SCOPE_SQL} "
        "ORDER BY project_id, event_id LIMIT 500"
    )


def test_reprice_next_page_sql_continues_after_the_last_key():
    sql = reprice_page_sql("usage", EventScope(), ("p'1", "e-9"), 20_000)

    assert sql.endswith(
        "FROM `usage`.usage_events FINAL WHERE (project_id, event_id) > ('p\\'1', 'e-9') "
        "ORDER BY project_id, event_id LIMIT 20000"
    )


def test_stale_days_compare_each_days_events_with_its_day_cell():
    sql = stale_days_sql("usage", " AND ".join(scope_conditions(SCOPE)))

    assert f"FROM `usage`.usage_events FINAL WHERE price_generation > 0 AND {SCOPE_SQL}\n" in sql
    assert "FROM `usage`.usage_window_cells WHERE level = 86400 AND grouping = 'project'" in sql
    assert "argMax(generation, version) AS generation" in sql
    assert "WHERE e.generation > c.generation" in sql


def test_a_scope_must_not_be_empty_by_construction():
    with pytest.raises(ValueError, match="is not before --until"):
        EventScope(since=UNTIL, until=UNTIL)


def test_pricing_records_are_json_ready():
    row = (
        "openai", "ft:x", "unpriced", 3, 2, 3_000, 100, 0, 0, 0,
        Decimal("0E-18"), None, datetime(2026, 11, 22, 10, 0), datetime(2026, 11, 22, 11, 0, 0, 500_000), "no model",
    )

    (record,) = pricing_records(MISSING_PRICE_COLUMNS, [row])

    assert record == {
        "provider": "openai", "model": "ft:x", "price_status": "unpriced", "events": 3, "projects": 2,
        "input_tokens": 3_000, "output_tokens": 100, "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
        "cost_usd": "0", "provider_cost_usd": None,
        "first_seen": "2026-11-22T10:00:00Z", "last_seen": "2026-11-22T11:00:00.500000Z", "detail": "no model",
    }


def test_reprice_record():
    summary = RepriceSummary(
        dry_run=True,
        projects={
            "a": ProjectChange("a", 10, 0, Decimal("1.5"), Decimal("1.5"), 0, 0),
            "b": ProjectChange("b", 4, 2, Decimal("0.25"), Decimal("0.000001250000000000"), 2, 0),
        },
    )

    record = reprice_record(summary, EventScope(since=SINCE, until=UNTIL))

    assert record == {
        "dry_run": True, "project": None, "since": "2026-11-22T10:00:30Z", "until": "2026-11-23T00:00:00Z",
        "events": 14, "changed": 2, "cost_before": "1.75", "cost_after": "1.50000125", "difference": "-0.24999875",
        "windows_recomputed": 0,
        "projects": [
            {"project_id": "b", "events": 4, "changed": 2, "cost_before": "0.25", "cost_after": "0.00000125",
             "difference": "-0.24999875", "not_priced_before": 2, "not_priced_after": 0},
            {"project_id": "a", "events": 10, "changed": 0, "cost_before": "1.5", "cost_after": "1.5",
             "difference": "0", "not_priced_before": 0, "not_priced_after": 0},
        ],
    }
