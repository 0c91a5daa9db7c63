"""`usage-pipeline clickhouse up|down|status`: a local ClickHouse server several workers share.

The server is the chDB engine (the same ClickHouse as the embedded store) serving the
ClickHouse HTTP interface on 127.0.0.1, run as its own process from
`<USAGE_PIPELINE_HOME>/clickhouse-server` (see stream_app/clickhouse_server). Progress goes
to stderr; `up` prints the CLICKHOUSE_URL alone on the last line of stdout, so
`export CLICKHOUSE_URL=$(usage-pipeline clickhouse up)` works.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stream_app.settings import PipelineSettings

EXIT_NOT_RUNNING = 3  # As `systemctl status` and `pg_ctl status` say "not running".


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `clickhouse` and its actions to the command tree."""
    parser = subparsers.add_parser(
        "clickhouse",
        help="run a local ClickHouse server that several workers share (no Docker)",
        description=(
            "The real ClickHouse engine (from the chDB wheel) serving the HTTP interface on "
            "127.0.0.1, kept in <USAGE_PIPELINE_HOME>/clickhouse-server. Give its URL to every "
            "worker as CLICKHOUSE_URL. No authentication: it listens on loopback only."
        ),
    )
    actions = parser.add_subparsers(dest="clickhouse_action", required=True, metavar="ACTION")

    up = actions.add_parser(
        "up",
        help="start the server unless it runs; print its CLICKHOUSE_URL",
        description=(
            "Start the server and wait until it answers with its own identity token. Does "
            "nothing but print the URL if it already runs. Without --port: the port of the "
            "last start if free, else 8123 if free, else any free port."
        ),
    )
    up.add_argument("--port", type=int, default=None, metavar="N", help="listen on 127.0.0.1:N")
    up.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="serve this store (e.g. an embedded store a single worker built) instead of "
        "<USAGE_PIPELINE_HOME>/clickhouse-server/data; no other process may have it open",
    )
    up.add_argument(
        "--allow-unverified-chdb",
        action="store_true",
        help="start even if the installed chdb-core is not the version this was verified with",
    )
    up.set_defaults(handler=run_up)

    down = actions.add_parser("down", help="stop the server (its data is kept)")
    down.add_argument(
        "--grace",
        type=float,
        default=None,
        metavar="S",
        help="seconds to let it shut down before killing it (default 2; clients with idle "
        "connections otherwise hold it ~5 s)",
    )
    down.set_defaults(handler=run_down)

    status = actions.add_parser(
        "status", help=f"say whether the server runs and where (exit {EXIT_NOT_RUNNING} if not)"
    )
    status.set_defaults(handler=run_status)


def run_up(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Start the server; the CLICKHOUSE_URL goes alone on stdout's last line."""
    from stream_app.clickhouse_server import LocalClickHouseServer, server_home

    server = LocalClickHouseServer(
        server_home(settings),
        port=args.port,
        data_dir=args.data_dir,
        allow_unverified_chdb=args.allow_unverified_chdb,
        progress=_note,
    )
    url = server.up()
    if settings.clickhouse_url is not None and settings.resolved_clickhouse_url != url:
        configured = _without_password(settings.resolved_clickhouse_url)
        _note(f"note: CLICKHOUSE_URL={configured} is set; commands use that, not {url}")
    print(url, flush=True)
    return 0


def run_down(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Stop the server if it runs."""
    from stream_app.clickhouse_server import LocalClickHouseServer, server_home

    server = LocalClickHouseServer(server_home(settings), progress=_note)
    stopped = server.down() if args.grace is None else server.down(grace=args.grace)
    _note("the ClickHouse server stopped" if stopped else f"no ClickHouse server was running from {server.home}")
    return 0


def run_status(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Print where the server runs, or that it does not."""
    from stream_app.clickhouse_server import LocalClickHouseServer, server_home

    status = LocalClickHouseServer(server_home(settings), progress=_note).status()
    if status.running:
        print(f"running at {status.url} (pid {status.pid}, ClickHouse {status.version}, data {status.data_dir})")
        return 0
    print(f"not running (data {status.data_dir})")
    return EXIT_NOT_RUNNING


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
