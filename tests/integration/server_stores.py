"""Sinks on a ClickHouse server of a test module's own, for store tests written for `chdb://`.

The sink and pricing store tests open one store per test and name its database `usage`
in their SQL. To run those same tests over HTTP (tests/integration/sink/test_server_sink.py,
tests/integration/pricing/test_server_store.py), a module starts one local server of its
own and empties it before each test, so every test again starts on a store of its own.
Never point this at a server someone else uses: it drops every non-system database.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

from stream_app.broker.local import find_free_port
from stream_app.clickhouse_server import LocalClickHouseServer
from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url

SYSTEM_DATABASES = ("system", "default", "INFORMATION_SCHEMA", "information_schema")


def own_server(home: Path) -> Iterator[str]:
    """Run a local ClickHouse server in `home` for the caller's scope; yield its base URL."""
    server = LocalClickHouseServer(home, port=find_free_port(), progress=lambda m: print(f"[clickhouse] {m}", file=sys.stderr))
    try:
        yield server.up().rsplit("/", 1)[0]
    finally:
        server.down()


def server_sinks(base_url: str, window_seconds: int) -> Iterator[Callable[..., ClickHouseSink]]:
    """`open_sink(directory, *, query="", **kwargs)` as the chdb fixtures have it, on `base_url`.

    `directory` only names a store: every test here uses one, so all map to the same
    (emptied) server; `?database=X` in `query` becomes the URL's database.
    """
    _drop_user_databases(base_url)
    opened: list[ClickHouseSink] = []

    def _open(directory: str = "ch", *, query: str = "", **kwargs) -> ClickHouseSink:
        database = parse_qs(query.lstrip("?")).get("database", ["usage"])[0]
        sink = ClickHouseSink(parse_clickhouse_url(f"{base_url}/{database}"), window_seconds=window_seconds, **kwargs)
        opened.append(sink)
        return sink.open()

    try:
        yield _open
    finally:
        for sink in opened:
            sink.close()


def _drop_user_databases(base_url: str) -> None:
    import clickhouse_connect

    location = parse_clickhouse_url(f"{base_url}/default")
    client = clickhouse_connect.get_client(host=location.host, port=location.port)
    try:
        names = [row[0] for row in client.query("SELECT name FROM system.databases").result_rows]
        for name in names:
            if name not in SYSTEM_DATABASES:
                client.command(f"DROP DATABASE `{name}` SYNC")
    finally:
        client.close()
