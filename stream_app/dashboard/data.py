"""The dashboard's figures: a request's filter in, every panel's rows out, as JSON-ready values.

Pure apart from the one `run_query` callable the caller passes (the worker's sink, or a
sink opened by `usage-pipeline dashboard`), so the shaping is tested without ClickHouse
and the money on a card is the very string `report` prints for the same range.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stream_app.core.times import parse_time
from stream_app.sink.dashboard_queries import TOTAL_FIELDS, DashboardFilter, Panel, panels, resolve_filter
from stream_app.sink.queries import format_money

RunQuery = Callable[[str], list[tuple]]

# (metric, label): the summary cards, in page order. `data-metric` carries the metric name.
CARDS: tuple[tuple[str, str], ...] = (
    ("cost_usd", "Cost (USD)"),
    ("events", "Calls"),
    ("input_tokens", "Input tokens"),
    ("output_tokens", "Output tokens"),
    ("cache_read_tokens", "Cache-read tokens"),
    ("cache_read_share", "Cache-read share of input"),
    ("cache_write_tokens", "Cache-write tokens"),
    ("reasoning_tokens", "Reasoning tokens"),
    ("reasoning_share", "Reasoning share of output"),
    ("failed_events", "Failed calls"),
    ("unpriced_events", "Unpriced calls"),
    ("tool_calls", "Tool calls"),
)
SHARE_PLACES = Decimal("0.000001")


def filter_from_params(params: Mapping[str, str], now: datetime, window_seconds: int) -> DashboardFilter:
    """The filter a request asks for (`range`, `since`, `until`, `project`, `agent`, `stack`); ValueError if unreadable."""
    range_name = params.get("range") or "24h"
    since = parse_time(params["since"], now=now) if params.get("since") else None
    until = parse_time(params["until"], now=now) if params.get("until") else None
    return resolve_filter(
        range_name,
        now,
        window_seconds,
        project=params.get("project") or None,
        agent=params.get("agent") or None,
        since=since,
        until=until,
        stack=params.get("stack") or "model",
    )


def json_value(value: Any) -> Any:
    """A ClickHouse value as JSON: money as its exact decimal string, times as RFC 3339 UTC."""
    if isinstance(value, Decimal):
        return format_money(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    return value


def rfc3339(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def share(part: int, whole: int) -> str | None:
    """part / whole to 6 decimal places (exact inputs, one rounding), None when whole is 0."""
    if not whole:
        return None
    return format_money((Decimal(part) / Decimal(whole)).quantize(SHARE_PLACES))


def summary_cards(totals: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cards with their exact values (strings: money and shares are decimals, counts integers)."""
    values: dict[str, Any] = {name: int(totals.get(name) or 0) for name in TOTAL_FIELDS if name != "cost_usd"}
    values["cost_usd"] = format_money(Decimal(totals.get("cost_usd") or 0))
    values["cache_read_share"] = share(values.get("cache_read_tokens", 0), values.get("input_tokens", 0))
    values["reasoning_share"] = share(values.get("reasoning_tokens", 0), values.get("output_tokens", 0))
    return [{"metric": metric, "label": label, "value": None if values.get(metric) is None else str(values[metric])} for metric, label in CARDS]


def report_command(f: DashboardFilter) -> str:
    """The `usage-pipeline report` invocation whose totals the cards equal."""
    group = "agent" if f.agent else "project"
    parts = ["usage-pipeline", "report", "--group-by", group]
    if f.project:
        parts += ["--project", f.project]
    parts += ["--since", rfc3339(datetime.fromtimestamp(f.since, UTC)), "--until", rfc3339(datetime.fromtimestamp(f.until, UTC))]
    return shlex.join(parts)


def panel_json(panel: Panel, rows: list[tuple] | None) -> dict[str, Any]:
    return {
        "columns": list(panel.columns),
        "rows": None if rows is None else [[json_value(v) for v in row] for row in rows],
        "unavailable": panel.unavailable,
    }


def dashboard_payload(f: DashboardFilter, range_name: str, database: str, run_query: RunQuery) -> dict[str, Any]:
    """Run every panel of the filter and shape the answer the page draws."""
    results: dict[str, dict[str, Any]] = {}
    for panel in panels(database, f):
        results[panel.name] = panel_json(panel, None if panel.sql is None else run_query(panel.sql))
    summary = results["summary"]
    totals = dict(zip(summary["columns"], summary["rows"][0] if summary["rows"] else [], strict=False))
    return {
        "filter": {
            "range": range_name,
            "since": rfc3339(datetime.fromtimestamp(f.since, UTC)),
            "until": rfc3339(datetime.fromtimestamp(f.until, UTC)),
            "bucket_seconds": f.bucket_seconds,
            "project": f.project,
            "agent": f.agent,
            "stack": f.stack,
        },
        "report_command": report_command(f),
        "cards": summary_cards(totals),
        "panels": results,
    }


def payload_for_request(params: Mapping[str, str], database: str, window_seconds: int, run_query: RunQuery, now: datetime | None = None) -> dict[str, Any]:
    """What `GET /dashboard/data` answers (ValueError for a filter it cannot read)."""
    f = filter_from_params(params, now or datetime.now(UTC), window_seconds)
    return dashboard_payload(f, params.get("range") or "24h", database, run_query)
