"""`usage-pipeline dashboard`: the usage dashboard (a web page) over the configured ClickHouse.

The same page as a worker's `/dashboard`, behind the same admin token (SPEC.md §5). An
embedded store held by a running worker is read through that worker, as `report` does.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from contextlib import ExitStack
from typing import Any

from stream_app.settings import PipelineSettings

DEFAULT_PORT = 8070


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="serve the usage dashboard (a web page) over the configured ClickHouse",
        description=(
            "Serve the usage dashboard at http://HOST:PORT/dashboard until interrupted: cost, tokens, "
            "top projects/agents/sessions/models and tool analytics, read from the window tables. "
            "With USAGE_ADMIN_TOKEN set, every request needs `Authorization: Bearer <token>`."
        ),
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (beyond loopback only with USAGE_ADMIN_TOKEN)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from aiohttp import web

    from stream_app.broker.local import find_free_port
    from stream_app.cli.stored_events import live_worker_url
    from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url
    from stream_app.worker.auth import check_listen_address, install_admin_auth
    from stream_app.worker.dashboard_pages import install_dashboard, store_source, worker_source

    check_listen_address(args.host, settings.admin_token, "--host")
    location = parse_clickhouse_url(settings.resolved_clickhouse_url, ca_file=settings.clickhouse_ca_file)
    port = args.port or find_free_port()
    app = web.Application()
    install_admin_auth(app, settings.admin_token)
    with ExitStack() as cleanup:
        worker_url = live_worker_url(location)
        if worker_url is not None:
            install_dashboard(app, worker_source(worker_url, settings.admin_token))
            source = f"the worker at {worker_url} (it holds {location.display})"
        else:
            sink = cleanup.enter_context(ClickHouseSink(location, window_seconds=settings.window_seconds))
            install_dashboard(app, store_source(sink))
            source = location.display
        print(f"[dashboard] reading {source}", file=sys.stderr, flush=True)
        asyncio.run(serve(app, args.host, port))
    return 0


async def serve(app: Any, host: str, port: int) -> None:
    """Listen, print the URL once it answers, and serve until SIGTERM or Ctrl-C."""
    from aiohttp import web

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        print(f"dashboard: http://{_client_host(host)}:{port}/dashboard", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in {"0.0.0.0", "", "::"} else host
