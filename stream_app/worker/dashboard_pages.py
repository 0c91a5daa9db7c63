"""The dashboard's HTTP routes, shared by the worker and `usage-pipeline dashboard` (SPEC.md §4).

- `GET /dashboard`                 the page (HTML; its script draws everything)
- `GET /dashboard/data?range=&since=&until=&project=&agent=&stack=`  every panel's figures (JSON)
- `GET /dashboard/assets/{name}`   the page's stylesheet and scripts (package data, no CDN)

Plain aiohttp routes on an aiohttp application: the worker adds them to Faust's own web
application, the dashboard command to a small one of its own; `install_admin_auth`
guards both the same way (SPEC.md §5). Where the figures come from is a `DashboardSource`:
an open sink, or the worker that holds the embedded store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from stream_app.errors import PipelineError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from stream_app.sink.clickhouse import ClickHouseSink

log = logging.getLogger("stream_app.dashboard")

DashboardSource = Callable[[dict[str, str]], Awaitable[dict[str, Any]]]

ASSETS: dict[str, str] = {
    "dashboard.css": "text/css",
    "charts.js": "text/javascript",
    "dashboard.js": "text/javascript",
}
# The page loads nothing from elsewhere and runs no inline code: tenant names it draws
# can never become markup or script.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def read_asset(name: str) -> bytes:
    """One file of stream_app/dashboard/assets (KeyError for any other name)."""
    if name not in ASSETS and name != "dashboard.html":
        raise KeyError(name)
    return resources.files("stream_app.dashboard").joinpath("assets", name).read_bytes()


def store_source(sink: ClickHouseSink) -> DashboardSource:
    """Figures from an open sink, computed in a thread (chDB calls block)."""
    from stream_app.dashboard.data import payload_for_request

    async def fetch(params: dict[str, str]) -> dict[str, Any]:
        return await asyncio.to_thread(
            payload_for_request, params, sink.location.database, sink.window_seconds, sink.query_rows
        )

    return fetch


def worker_source(base_url: str, admin_token: SecretStr | None) -> DashboardSource:
    """Figures from the worker that holds the embedded store (the way `report` asks it)."""
    from stream_app.cli.stored_events import call_worker

    async def fetch(params: dict[str, str]) -> dict[str, Any]:
        return await asyncio.to_thread(call_worker, base_url, "/dashboard/data", params=params, admin_token=admin_token)

    return fetch


def install_dashboard(web_app: web.Application, source: DashboardSource) -> None:
    """Add the dashboard's routes to an aiohttp application that has not started yet."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=read_asset("dashboard.html"), content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=read_asset(name), content_type=ASSETS[name], charset="utf-8", headers=SECURITY_HEADERS)

    async def data(request: web.Request) -> web.Response:
        params = {k: v for k, v in request.query.items() if k in ("range", "since", "until", "project", "agent", "stack")}
        try:
            payload = await source(params)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400, headers=SECURITY_HEADERS)
        except PipelineError as exc:
            return web.json_response({"error": str(exc)}, status=503, headers=SECURITY_HEADERS)
        except Exception as exc:  # ClickHouse unreachable: say so, never guess figures
            log.warning("dashboard data failed: %s", exc)
            return web.json_response({"error": f"ClickHouse did not answer: {exc}"}, status=503, headers=SECURITY_HEADERS)
        return web.json_response(payload, headers=SECURITY_HEADERS)

    web_app.router.add_get("/dashboard", page)
    web_app.router.add_get("/dashboard/data", data)
    web_app.router.add_get("/dashboard/assets/{name}", asset)


def install_worker_dashboard(app: Any, sink: ClickHouseSink) -> None:
    """The worker's `/dashboard`, over the sink it writes with (one line in worker_cmd)."""
    install_dashboard(app.web.web_app, store_source(sink))
