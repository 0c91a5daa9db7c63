"""Every test of test_reprice_store.py again, over HTTP against a real ClickHouse server.

The tests are imported, not copied: pytest collects them here a second time, and their
`open_sink` (and so `stored`) resolves to the fixture below, which opens sinks on a local
ClickHouse server (`usage-pipeline clickhouse up`) instead of an embedded store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from stream_app.sink.clickhouse import ClickHouseSink
from tests.integration.pricing.conftest import WINDOW
from tests.integration.pricing.test_reprice_store import *  # noqa: F403 - the tests, collected again
from tests.integration.server_stores import own_server, server_sinks

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from own_server(tmp_path_factory.mktemp("pricing-server"))


@pytest.fixture
def open_sink(server_url: str) -> Iterator[Callable[..., ClickHouseSink]]:  # noqa: F811 - replaces the chdb one
    yield from server_sinks(server_url, WINDOW)
