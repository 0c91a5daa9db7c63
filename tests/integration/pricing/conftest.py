"""Fixtures for pricing tests against the real ClickHouse engine (embedded chDB)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url

WINDOW = 60

OpenSink = Callable[..., ClickHouseSink]


@pytest.fixture
def open_sink(tmp_path: Path) -> Iterator[OpenSink]:
    """Open sinks on directories under tmp_path; every one is closed when the test ends.

    One process can open one chDB directory at a time, so a test closes one before the next.
    """
    opened: list[ClickHouseSink] = []

    def _open(directory: str = "ch", **kwargs) -> ClickHouseSink:
        sink = ClickHouseSink(parse_clickhouse_url(f"chdb://{tmp_path / directory}"), window_seconds=WINDOW, **kwargs)
        opened.append(sink)
        return sink.open()

    yield _open
    for sink in opened:
        sink.close()
