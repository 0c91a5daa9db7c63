"""Every test of test_clickhouse_sink.py again, over HTTP against a real ClickHouse server.

The tests are imported, not copied: pytest collects them here a second time, and their
`open_sink` (and so `sink`) resolves to the fixture below, which opens sinks on a local
ClickHouse server (`usage-pipeline clickhouse up`) instead of an embedded store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stream_app.sink.clickhouse import ClickHouseSink
from tests.integration.server_stores import own_server, server_sinks
from tests.integration.sink.test_clickhouse_sink import *  # noqa: F403 - the tests, collected again
from tests.integration.sink.test_clickhouse_sink import WINDOW

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from own_server(tmp_path_factory.mktemp("sink-server"))


@pytest.fixture
def open_sink(server_url: str) -> Iterator[Callable[..., ClickHouseSink]]:  # noqa: F811 - replaces the chdb one
    yield from server_sinks(server_url, WINDOW)


def test_the_store_is_a_server(sink: ClickHouseSink, tmp_path: Path) -> None:
    assert sink.location.kind == "http" and sink.query_rows("SELECT 1") == [(1,)]
