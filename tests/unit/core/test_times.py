"""`parse_time`: what people type for `report --since/--until`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stream_app.core.times import parse_time

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", datetime(2026, 11, 22, 11, 59, 30, tzinfo=UTC)),
        ("15m", datetime(2026, 11, 22, 11, 45, tzinfo=UTC)),
        ("2h", datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
        ("7d", datetime(2026, 11, 15, 12, 0, tzinfo=UTC)),
        ("0m", NOW),
        (" 2h ", datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
    ],
)
def test_age_before_now(text, expected):
    assert parse_time(text, now=NOW) == expected


def test_age_defaults_to_the_real_clock():
    before = datetime.now(UTC)

    moment = parse_time("1h")

    assert before - timedelta(hours=1, seconds=5) <= moment <= datetime.now(UTC) - timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T12:00:00+02:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T10:00:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),  # naive means UTC
        ("2026-11-22", datetime(2026, 11, 22, tzinfo=UTC)),
        ("2026-11-22T10:00:00.250Z", datetime(2026, 11, 22, 10, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_absolute_times(text, expected):
    moment = parse_time(text, now=NOW)

    assert moment == expected
    assert moment.tzinfo is not None


def test_offset_is_kept_as_given():
    moment = parse_time("2026-11-22T12:00:00+02:00")

    assert moment.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("text", ["", "yesterday", "2h30m", "-5m", "5w", "2026-13-01", "12:00"])
def test_unreadable_time_says_what_to_type(text):
    with pytest.raises(ValueError, match="cannot read time") as caught:
        parse_time(text, now=NOW)

    assert "2026-11-22T10:00:00Z" in str(caught.value)
