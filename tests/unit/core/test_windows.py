"""Tumbling windows by event time: pure math on integers and datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from stream_app.core.windows import Grouping, WindowKey, touched_project_windows, window_keys, window_start
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


def test_window_keys_with_a_session():
    event = make_event(project_id="acme", agent_name="planner", session_id="s-1", timestamp=at(12, 0, 59, 999_000))

    assert window_keys(event, 60) == (
        WindowKey("project", "acme", "", "", at(12, 0)),
        WindowKey("agent", "acme", "planner", "", at(12, 0)),
        WindowKey("session", "acme", "", "s-1", at(12, 0)),
    )


def test_window_keys_without_a_session_have_no_session_window():
    event = make_event(project_id="acme", agent_name="planner", session_id=None, timestamp=at(12, 1))

    assert window_keys(event, 60) == (
        WindowKey(Grouping.PROJECT, "acme", "", "", at(12, 1)),
        WindowKey(Grouping.AGENT, "acme", "planner", "", at(12, 1)),
    )


def test_every_window_key_starts_with_the_project():
    event = make_event(project_id="acme", session_id="s-1")

    assert {key.project_id for key in window_keys(event, 60)} == {"acme"}
    assert Grouping.ALL == ("project", "agent", "session")


def test_window_keys_are_hashable_and_ordered():
    a = WindowKey("agent", "acme", "a", "", at(12, 0))
    b = WindowKey("agent", "acme", "a", "", at(12, 1))

    assert {a, WindowKey("agent", "acme", "a", "", at(12, 0))} == {a}
    assert sorted([b, a]) == [a, b]


def test_touched_project_windows():
    events = [
        make_event(project_id="acme", timestamp=at(12, 0, 10)),
        make_event(project_id="acme", timestamp=at(12, 0, 59)),
        make_event(project_id="acme", timestamp=at(12, 1, 0)),
        make_event(project_id="globex", timestamp=at(12, 0, 30)),
    ]

    assert touched_project_windows(events, 60) == {
        ("acme", at(12, 0)),
        ("acme", at(12, 1)),
        ("globex", at(12, 0)),
    }


def test_touched_project_windows_of_nothing():
    assert touched_project_windows([], 60) == set()
