"""How the read commands reach stored events: the worker that holds the embedded store, or ClickHouse.

An embedded (chdb) store can be open in one process only: while a worker holds it,
`report`, `prices` and `reprice` ask that worker over HTTP instead of opening it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from stream_app.errors import PipelineError
from stream_app.settings import PipelineSettings

if TYPE_CHECKING:
    from pydantic import SecretStr

    from stream_app.sink.clickhouse import ClickHouseLocation, ClickHouseSink
    from stream_app.sink.queries import EventScope, ReportQuery

T = TypeVar("T")


def live_worker_url(location: ClickHouseLocation) -> str | None:
    """The URL of the running worker that holds the embedded store at `location`, if any.

    None means: open `location` directly. An embedded store that does not exist yet is a
    `PipelineError`, since opening it would only create an empty one.
    """
    from stream_app.worker.endpoint import find_live_endpoint

    if location.kind == "chdb" and location.path is not None:
        endpoint = find_live_endpoint(location.path)
        if endpoint is not None:
            return endpoint.url
        if not location.path.exists():
            raise PipelineError(f"no data yet: the embedded store {location.path} does not exist (run a worker or the demo)")
    return None


def from_worker_or_store(
    settings: PipelineSettings, ask_worker: Callable[[str], T], use_store: Callable[[ClickHouseSink], T]
) -> T:
    """Ask the worker holding the embedded store, or open ClickHouse directly (as `report` does)."""
    from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url

    location = parse_clickhouse_url(settings.resolved_clickhouse_url, ca_file=settings.clickhouse_ca_file)
    worker_url = live_worker_url(location)
    if worker_url is not None:
        return ask_worker(worker_url)
    with ClickHouseSink(location, window_seconds=settings.window_seconds) as sink:
        try:
            return use_store(sink)
        except PipelineError:
            raise
        except Exception as exc:
            raise PipelineError(f"ClickHouse at {location.display} failed: {exc}") from exc


def scope_params(scope: EventScope | ReportQuery) -> dict[str, str]:
    """The project/since/until of a scope as the query parameters a worker page reads."""
    params = {}
    if scope.project:
        params["project"] = scope.project
    if scope.since:
        params["since"] = scope.since.isoformat()
    if scope.until:
        params["until"] = scope.until.isoformat()
    return params


def call_worker(
    base_url: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    timeout: float = 60.0,
    admin_token: SecretStr | None = None,
) -> Any:
    """GET (or POST a JSON body to) a worker page; its JSON answer, or a PipelineError saying why not.

    Sends `USAGE_ADMIN_TOKEN` (pass `settings.admin_token`) when one is configured.
    """
    from stream_app.worker.auth import admin_headers

    url = f"{base_url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    data = None if body is None else json.dumps(body).encode()
    headers = {**admin_headers(admin_token), **({"Content-Type": "application/json"} if data else {})}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            reason = exc.reason
        if exc.code == 404:
            reason = "this worker has no such page (started from an older version? restart it)"
        elif exc.code == 401:
            reason = "it needs the worker's USAGE_ADMIN_TOKEN: set the same token in this environment"
        raise PipelineError(f"the worker holding the embedded store refused {path}: {reason}") from None
    except OSError as exc:
        raise PipelineError(f"the worker holding the embedded store did not answer at {url}: {exc}") from exc
