"""Pricing pages of a worker: what `prices missing|compare` and `reprice` ask for.

The embedded store can be opened by one process at a time, so while a worker holds it
these commands ask the worker (the same way `report` does) instead of opening the files:

- `GET /prices/missing?since=&until=&project=`  models seen without a full price
- `GET /prices/compare?since=&until=&project=`  our cost beside the provider-reported one
- `POST /reprice` with JSON `{"since", "until", "project", "dry_run"}`  reprice stored events

`/reprice` prices with the price file as it is *now* (read and validated per request), not
as the worker loaded it at start; the answer says whether the two differ, because then the
worker still bills new events with the old prices until it is restarted.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import faust
from faust.web import View

from stream_app.core.pricing import CatalogPricer
from stream_app.core.times import parse_time
from stream_app.errors import PipelineError
from stream_app.settings import PipelineSettings
from stream_app.sink.clickhouse import ClickHouseSink
from stream_app.sink.queries import EventScope, reprice_record


def scope_from_params(params: Any) -> EventScope:
    """An EventScope from query parameters or a JSON body (ValueError when unreadable)."""
    return EventScope(
        project=params.get("project") or None,
        since=parse_time(params["since"]) if params.get("since") else None,
        until=parse_time(params["until"]) if params.get("until") else None,
    )


def install_pricing_pages(app: faust.App, sink: ClickHouseSink, settings: PipelineSettings, loaded_digest: str) -> None:
    """Add the pricing pages; `loaded_digest` is the digest of the price file the worker bills with."""

    @app.page("/prices/missing")
    async def missing_prices(web: Any, request: Any) -> Any:
        return await _records(web, request, sink.missing_prices)

    @app.page("/prices/compare")
    async def provider_costs(web: Any, request: Any) -> Any:
        return await _records(web, request, sink.provider_costs)

    @app.page("/reprice")
    class Reprice(View):
        async def get(self, request: Any, **kwargs: Any) -> Any:
            return self.json({"error": "POST a JSON body: {since, until, project, dry_run}"}, status=405)

        async def post(self, request: Any, **kwargs: Any) -> Any:
            try:
                body = json.loads(await request.read() or b"{}")
                scope = scope_from_params(body)
                if scope.since is None or scope.until is None:
                    raise ValueError("since and until are required")
                dry_run = bool(body.get("dry_run", False))
                pricer = await asyncio.to_thread(CatalogPricer.from_settings, settings)
            except (ValueError, TypeError, KeyError, PipelineError) as exc:
                return self.json({"error": str(exc)}, status=400)
            try:
                summary = await asyncio.to_thread(sink.reprice, scope, pricer, dry_run=dry_run)
            except Exception as exc:  # ClickHouse failed mid-way: rerunning finishes the job
                return self.json({"error": f"reprice failed: {exc}; running it again is safe"}, status=503)
            record = reprice_record(summary, scope)
            record["worker_prices_current"] = pricer.overrides.digest == loaded_digest
            return self.json(record)


async def _records(web: Any, request: Any, fetch: Any) -> Any:
    try:
        scope = scope_from_params(request.query)
    except ValueError as exc:
        return web.json({"error": str(exc)}, status=400)
    try:
        return web.json(await asyncio.to_thread(fetch, scope))
    except Exception as exc:  # ClickHouse unreachable: say so rather than answer empty
        return web.json({"error": f"ClickHouse did not answer: {exc}"}, status=503)
