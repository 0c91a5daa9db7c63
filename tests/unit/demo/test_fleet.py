"""The pure parts of `demo --workers N`: partitions, merged counters, the progress line."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from stream_app.demo.fleet import demo_partitions, merge_stats, progress_line, store_server_url
from stream_app.errors import ConfigurationError


def test_at_least_two_partitions_per_worker() -> None:
    assert demo_partitions(1, 4) == 4
    assert demo_partitions(3, 4) == 6
    assert demo_partitions(2, 12) == 12


def test_counters_add_up_and_dead_letters_merge_by_reason() -> None:
    merged = merge_stats([
        {"messages": 3, "events_accepted": 10, "sink_retries": 1, "dead_letters_total": 2, "dead_letters": {"invalid_json": 2}},
        {"messages": 4, "events_accepted": 5, "sink_retries": 0, "dead_letters_total": 1, "dead_letters": {"invalid_json": 1}},
    ])
    assert merged == {
        "messages": 7, "events_accepted": 15, "sink_retries": 1, "dead_letters_total": 3, "dead_letters": {"invalid_json": 3},
    }


def test_progress_shows_each_workers_partitions() -> None:
    line = progress_line(
        [{"messages": 1200, "events_accepted": 900, "partitions": [0, 3]}, {"messages": 0, "events_accepted": 0, "partitions": []}],
        elapsed=3.0,
    )
    assert "w1 p0,3: 1,200 msgs" in line and "w2 p-: 0 msgs" in line and "900 events written (~300/s)" in line


def test_an_embedded_store_cannot_be_shared(tmp_path: Path) -> None:
    with ExitStack() as cleanup, pytest.raises(ConfigurationError, match="CLICKHOUSE_URL names an embedded store, which one process opens at a time"):
        store_server_url(f"chdb://{tmp_path}", tmp_path, cleanup, print)


def test_a_configured_server_is_used_as_is(tmp_path: Path) -> None:
    with ExitStack() as cleanup:
        assert store_server_url("http://ch:8123/usage", tmp_path, cleanup, print) == "http://ch:8123/usage"
