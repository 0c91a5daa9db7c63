"""Tumbling windows by event time and the per-message window aggregator: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from decimal import Decimal

from stream_app.core.windows import (
    Counted,
    Grouping,
    Source,
    ToolKey,
    WindowAggregator,
    WindowKey,
    WindowTotals,
    window_keys,
    window_start,
)
from tests.factories import make_event


def at(hour: int, minute: int, second: int = 0, micro: int = 0) -> datetime:
    return datetime(2026, 11, 22, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "size", "expected"),
    [
        (at(12, 0, 59, 999_000), 60, at(12, 0)),
        (at(12, 0, 59, 999_999), 60, at(12, 0)),
        (at(12, 1, 0), 60, at(12, 1)),
        (at(12, 0, 0), 60, at(12, 0)),
        (at(12, 4, 59, 999_999), 300, at(12, 0)),
        (at(12, 5, 0), 300, at(12, 5)),
        (at(12, 7, 30), 300, at(12, 5)),
        (at(12, 59, 59), 3600, at(12, 0)),
        (at(23, 59, 59), 86_400, at(0, 0)),
        (at(12, 0, 0, 1), 1, at(12, 0)),
    ],
)
def test_window_start(timestamp, size, expected):
    assert window_start(timestamp, size) == expected


def test_window_start_is_aligned_to_the_epoch_not_to_the_minute():
    # 1_000_000_003 % 7 == 2, so the 7 s window holding it starts at 1_000_000_001.
    moment = datetime.fromtimestamp(1_000_000_003.5, tz=UTC)

    assert window_start(moment, 7) == datetime.fromtimestamp(1_000_000_001, tz=UTC)


def test_window_start_uses_the_instant_and_answers_in_utc():
    local = datetime(2026, 11, 22, 13, 2, 30, tzinfo=timezone(timedelta(hours=1)))

    start = window_start(local, 60)

    assert start == at(12, 2)
    assert start.utcoffset() == timedelta(0)


def test_window_start_with_a_half_hour_offset():
    # 17:33:10+05:30 is 12:03:10 UTC: the 5 minute window starts at 12:00 UTC, not 17:30 local.
    local = datetime(2026, 11, 22, 17, 33, 10, tzinfo=timezone(timedelta(hours=5, minutes=30)))

    assert window_start(local, 300) == at(12, 0)


def test_window_keys_cover_four_groupings_starting_with_the_project():
    event = make_event(project_id="acme", agent_name="planner", session_id="s-1", provider="openai", model="gpt-4o")

    assert window_keys(Counted.of_event(event), at(12, 1)) == (
        WindowKey(Grouping.PROJECT, "acme", "", "", "", "", at(12, 1)),
        WindowKey(Grouping.AGENT, "acme", "planner", "", "", "", at(12, 1)),
        WindowKey(Grouping.SESSION, "acme", "", "s-1", "", "", at(12, 1)),
        WindowKey(Grouping.MODEL, "acme", "", "", "openai", "gpt-4o", at(12, 1)),
    )
    assert Grouping.ALL == ("project", "agent", "session", "model")


def test_an_event_without_a_session_counts_in_the_no_session_group():
    # So that every grouping sums to the project's total.
    event = make_event(project_id="acme", session_id=None)

    keys = window_keys(Counted.of_event(event), at(12, 1))

    assert keys[2] == WindowKey(Grouping.SESSION, "acme", "", "", "", "", at(12, 1))


def test_aggregator_keeps_one_total_per_window_and_source_message():
    agg = WindowAggregator(60)
    m1, m2 = Source("t", 0, 10), Source("t", 0, 11)
    e1 = make_event(project_id="acme", session_id="s", timestamp=at(12, 0, 5), usage={"input_tokens": 100, "output_tokens": 10, "cache_read_tokens": 0})
    e2 = make_event(project_id="acme", session_id="s", timestamp=at(12, 0, 50), usage={"input_tokens": 7, "output_tokens": 3, "cache_read_tokens": 0})
    e3 = make_event(project_id="acme", session_id="s", timestamp=at(12, 1, 0), usage={"input_tokens": 1, "output_tokens": 1, "cache_read_tokens": 0})

    agg.add(Counted.of_event(e1), Decimal("0.25"), True, m1)
    agg.add(Counted.of_event(e2), Decimal("0.5"), False, m1)
    agg.add(Counted.of_event(e3), Decimal("1"), True, m2)

    project = WindowKey(Grouping.PROJECT, "acme", "", "", "", "", at(12, 0))
    totals = agg.windows[(project, m1)]
    assert (totals.events, totals.input_tokens, totals.output_tokens, totals.cost_usd, totals.unpriced_events) == (
        2, 107, 13, Decimal("0.75"), 1,
    )
    assert (project, m2) not in agg.windows  # e3 is in the next window
    assert agg.totals_by_window()[project._replace(window_start=at(12, 1))].events == 1
    assert len(agg.windows) == 4 + 4  # four groupings, in m1's window and in m2's


def test_aggregator_counts_tools_with_every_duration_kept():
    agg = WindowAggregator(60)
    event = make_event(
        project_id="acme", agent_name="a", timestamp=at(12, 0, 5), error="boom",
        tool_calls=[
            {"name": "search", "duration_ms": 10.0, "error": None},
            {"name": "search", "duration_ms": 30.5, "error": "timeout"},
            {"name": "fetch", "duration_ms": None, "error": None},
        ],
    )

    agg.add(Counted.of_event(event), Decimal(0), True, Source("t", 1, 5))

    search = agg.tools[(ToolKey("acme", "a", "search", at(12, 0)), Source("t", 1, 5))]
    fetch = agg.tools[(ToolKey("acme", "a", "fetch", at(12, 0)), Source("t", 1, 5))]
    assert (search.calls, search.errors, search.durations_ms) == (2, 1, [10.0, 30.5])
    assert (fetch.calls, fetch.errors, fetch.durations_ms) == (1, 0, [])
    totals = next(iter(agg.windows.values()))
    assert (totals.failed_events, totals.tool_calls) == (1, 3)


def test_counted_from_a_stored_row_equals_counted_from_the_event():
    event = make_event(tool_calls=[{"name": "search", "duration_ms": 12.5, "error": "x"}], error=None)
    from stream_app.core.billable import compact_json

    stored = {
        "project_id": event.project_id, "agent_name": event.agent_name, "session_id": event.session_id or "",
        "provider": event.provider, "model": event.model, "timestamp": event.timestamp.replace(tzinfo=None),
        "input_tokens": event.usage.input_tokens, "output_tokens": event.usage.output_tokens,
        "cache_read_tokens": event.usage.cache_read_tokens, "cache_write_tokens": event.usage.cache_write_tokens,
        "reasoning_tokens": event.usage.reasoning_tokens, "error": None,
        "tool_calls": compact_json([t.model_dump(mode="json") for t in event.tool_calls]),
    }

    assert Counted.of_stored(stored) == Counted.of_event(event)


def test_totals_merge_adds_every_field():
    a, b = WindowTotals(events=1, cost_usd=Decimal("0.1"), tool_calls=2), WindowTotals(events=2, cost_usd=Decimal("0.2"))

    a.merge(b)

    assert (a.events, a.cost_usd, a.tool_calls) == (3, Decimal("0.3"), 2)


def test_window_size_must_be_positive():
    with pytest.raises(ValueError):
        WindowAggregator(0)
