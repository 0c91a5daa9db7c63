"""The server process itself: clickhouse-local from the chDB wheel, serving HTTP.

Run as `python -m stream_app.clickhouse_server --home H --data-dir D --port P --token T`
by `LocalClickHouseServer.up()` (control.py), with `H/config.xml` already written: the
engine reads its listener settings only from a config.xml in the working directory.

`chdb._chdb.query(...)` runs the whole clickhouse-local program for one call; the call
serves HTTP for as long as its idle query runs and releases the GIL meanwhile. It runs
in a thread so that the main thread can take SIGTERM: it then kills the idle query over
HTTP, which makes the engine stop its listener and shut down its storage cleanly. The
engine waits a hard-coded ~5 s for clients still holding connections and then exits
the process with status 1 by itself; `down` does not wait for that (control.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import urllib.request
from pathlib import Path

from stream_app.clickhouse_server.config import HOST, serve_sql, stop_sql, unverified_chdb_message

# Exit statuses a person may see in server.log or `echo $?`.
EXIT_STOPPED = 0
EXIT_ENGINE_ENDED = 3  # the engine returned without being asked: it failed to start or died
EXIT_UNVERIFIED = 4
POLL_SECONDS = 0.2


def installed_chdb_core() -> str | None:
    """The installed chdb-core version, or None if it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("chdb-core")
    except metadata.PackageNotFoundError:
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stream_app.clickhouse_server", description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="working directory holding config.xml")
    parser.add_argument("--data-dir", type=Path, required=True, help="the store the server serves")
    parser.add_argument("--port", type=int, required=True, help="the HTTP port written in config.xml")
    parser.add_argument("--token", required=True, help="the identity token written in config.xml")
    parser.add_argument("--allow-unverified-chdb", action="store_true")
    return parser.parse_args(argv)


class EngineThread(threading.Thread):
    """Runs the serving one-shot query; remembers how it ended."""

    def __init__(self, data_dir: Path, token: str) -> None:
        super().__init__(name="clickhouse-local", daemon=True)
        self.data_dir = data_dir
        self.token = token
        self.error: BaseException | None = None

    def run(self) -> None:
        import chdb._chdb as engine  # the private entry point pinned in config.VERIFIED_CHDB_CORE

        try:
            engine.query(serve_sql(self.token), "TabSeparated", path=str(self.data_dir))
        except BaseException as exc:  # noqa: BLE001 - reported by main()
            self.error = exc


def request_stop(port: int, token: str) -> bool:
    """Kill the idle query over HTTP; True if the engine took the request."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/", data=stop_sql(token).encode(), timeout=10) as response:
            response.read()
        return True
    except OSError as exc:
        print(f"[clickhouse-server] could not ask the engine to stop: {exc}", file=sys.stderr, flush=True)
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = unverified_chdb_message(installed_chdb_core())
    if problem and not args.allow_unverified_chdb:
        print(f"[clickhouse-server] {problem}", file=sys.stderr, flush=True)
        return EXIT_UNVERIFIED
    os.chdir(args.home)  # the engine reads config.xml from here
    args.data_dir.mkdir(parents=True, exist_ok=True)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    engine = EngineThread(args.data_dir, args.token)
    engine.start()
    while engine.is_alive() and not stop.is_set():
        stop.wait(POLL_SECONDS)
    if not stop.is_set():
        detail = f": {engine.error!r}" if engine.error else " (its error is printed above)"
        print(f"[clickhouse-server] the engine stopped serving unasked{detail}", file=sys.stderr, flush=True)
        return EXIT_ENGINE_ENDED
    print("[clickhouse-server] stopping: killing the idle query", file=sys.stderr, flush=True)
    if request_stop(args.port, args.token):
        # The engine now closes its listener and storage; it may exit the process itself.
        engine.join()
    print("[clickhouse-server] stopped", file=sys.stderr, flush=True)
    sys.stderr.flush()
    # Skip interpreter teardown: the engine's own threads may still be winding down.
    os._exit(EXIT_STOPPED)
