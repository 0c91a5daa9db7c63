"""The local ClickHouse server for real: the chDB engine serving HTTP in its own process.

If a chDB upgrade breaks the private entry point it runs on, these tests fail (the
server does not come up, or answers with another engine version).
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest

from stream_app.broker.local import find_free_port
from stream_app.clickhouse_server import LocalClickHouseServer, control
from stream_app.clickhouse_server.config import ENGINE_VERSION_PREFIX
from stream_app.errors import ClickHouseServerError

pytestmark = pytest.mark.integration


def quiet(message: str) -> None:
    print(f"[clickhouse] {message}", file=sys.stderr)


def server_pids(home: Path) -> list[int]:
    """Every live process whose command line names this server home."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"stream_app.clickhouse_server" in args and str(home).encode() in args:
            pids.append(int(entry.name))
    return pids


def client_for(url: str):
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    return clickhouse_connect.get_client(host="127.0.0.1", port=port)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalClickHouseServer]:
    server = LocalClickHouseServer(tmp_path / "ch-server", port=find_free_port(), progress=quiet)
    try:
        yield server
    finally:
        server.down()


def test_serves_the_pinned_engine_over_http_and_is_idempotent(server: LocalClickHouseServer) -> None:
    url = server.up()
    assert url == f"http://127.0.0.1:{server.port}/usage"
    status = server.status()
    assert status.running and status.url == url and status.version.startswith(ENGINE_VERSION_PREFIX)
    assert server.up() == url  # a second `up` finds it
    assert server_pids(server.home) == [status.pid]

    client = client_for(url)
    client.command("CREATE DATABASE IF NOT EXISTS t")
    client.command(
        "CREATE TABLE t.e (id String, n UInt64, v DateTime64(3)) ENGINE = ReplacingMergeTree(v) ORDER BY id"
    )
    client.insert("t.e", [["a", 1, 1], ["b", 2, 1]], column_names=["id", "n", "v"])
    client.insert("t.e", [["a", 5, 2]], column_names=["id", "n", "v"])  # replaces a
    assert client.query("SELECT sum(n) FROM t.e FINAL").result_rows == [(7,)]

    # Down while that client still holds its connection: quick, and nothing is left behind.
    started = time.monotonic()
    assert server.down() is True
    assert server_pids(server.home) == []
    assert not server.status().running
    assert time.monotonic() - started < 15  # bounded by the grace, not by the client

    # The data is still there after a restart.
    url = server.up()
    assert client_for(url).query("SELECT sum(n) FROM t.e FINAL").result_rows == [(7,)]


def test_a_taken_port_is_named(server: LocalClickHouseServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", server.port))
        sock.listen()
        with pytest.raises(ClickHouseServerError, match=rf"port 127.0.0.1:{server.port} is taken"):
            server.up()
    assert server_pids(server.home) == []


def test_a_store_held_by_an_embedded_user_is_named(tmp_path: Path) -> None:
    data = tmp_path / "store"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, clickhouse_connect; "
            f"c = clickhouse_connect.get_client(dsn='chdb://{data}'); c.command('SELECT 1'); "
            "print('open', flush=True); sys.stdin.read()"
        )],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    server = LocalClickHouseServer(tmp_path / "home", port=find_free_port(), data_dir=data, progress=quiet)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(ClickHouseServerError, match=rf"open in another process \(pid {holder.pid}") as refused:
            server.up()
        assert f"chdb://{data}" in str(refused.value)
    finally:
        holder.communicate("")  # let it close the store
        server.down()
    # Once the embedded user is gone, the same store is served.
    try:
        assert server.up().startswith("http://127.0.0.1:")
    finally:
        server.down()


def test_an_unverified_chdb_is_refused_before_anything_starts(server, monkeypatch) -> None:
    monkeypatch.setattr(control, "installed_chdb_core", lambda: "99.1.0")
    with pytest.raises(ClickHouseServerError, match=r"chdb-core 99.1.0 is installed.*--allow-unverified-chdb"):
        server.up()
    assert server_pids(server.home) == []


def test_another_http_server_on_the_port_is_not_taken_for_ours(tmp_path) -> None:
    handler = type("Ping", (http.server.BaseHTTPRequestHandler,), {
        "do_GET": lambda self: (self.send_response(200), self.end_headers(), self.wfile.write(b"Ok.\n")),
        "log_message": lambda self, *a: None,
    })
    impostor = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    try:
        assert control.identify(impostor.server_port) is None
    finally:
        impostor.shutdown()
        impostor.server_close()


def test_cli_up_prints_the_url_alone_and_down_leaves_no_process(tmp_path: Path) -> None:
    env = {**os.environ, "USAGE_PIPELINE_HOME": str(tmp_path / "home")}
    env.pop("CLICKHOUSE_URL", None)
    home = tmp_path / "home" / "clickhouse-server"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stream_app", "clickhouse", *args], env=env, capture_output=True, text=True, timeout=120
        )

    try:
        up = cli("up", "--port", str(find_free_port()))
        assert up.returncode == 0, up.stderr
        url = up.stdout.strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/usage") and "\n" not in url
        status = cli("status")
        assert status.returncode == 0 and url in status.stdout
        assert client_for(url).command("SELECT 1") == 1
        assert len(server_pids(home)) == 1
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert server_pids(home) == []
    assert cli("status").returncode == 3
