"""`usage-pipeline report`: billing totals from ClickHouse, as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import urllib.parse
import urllib.request
from typing import Any

from stream_app.cli.stored_events import live_worker_url, scope_params
from stream_app.errors import PipelineError
from stream_app.settings import PipelineSettings
from stream_app.sink.queries import GROUP_KEYS, TOOL_COLUMNS, TOTAL_COLUMNS, ReportQuery, parse_every


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="billing totals from ClickHouse",
        description=(
            "Billing totals per group, each event_id counted once, read from the pre-aggregated "
            "windows. --since/--until are widened to whole windows (whole buckets with --every). "
            "Works while a worker holds the embedded store (it asks that worker over HTTP)."
        ),
    )
    parser.add_argument("--group-by", choices=sorted(GROUP_KEYS), default="project")
    parser.add_argument("--project", help="only this project_id")
    parser.add_argument("--since", help="from this event time (RFC 3339, a date, or an age like 24h)")
    parser.add_argument("--until", help="before this event time")
    parser.add_argument(
        "--every",
        metavar="SIZE",
        help="one row per group and time bucket: 1m, 5m, 1h, 1d (a whole multiple of USAGE_WINDOW_SECONDS)",
    )
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from stream_app.core.times import parse_time

    try:
        query = ReportQuery(
            group_by=args.group_by,
            project=args.project,
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
            every=parse_every(args.every, settings.window_seconds) if args.every else None,
        )
    except ValueError as exc:
        raise PipelineError(str(exc)) from None
    records = fetch_report(settings, query)
    sys.stdout.write(render(records, query, args.format))
    return 0


def fetch_report(settings: PipelineSettings, query: ReportQuery) -> list[dict[str, Any]]:
    """Ask the worker that holds the embedded store, or open ClickHouse directly."""
    from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url

    location = parse_clickhouse_url(settings.resolved_clickhouse_url, ca_file=settings.clickhouse_ca_file)
    worker_url = live_worker_url(location)
    if worker_url is not None:
        return report_from_worker(worker_url, query, admin_token=settings.admin_token)
    with ClickHouseSink(location, window_seconds=settings.window_seconds) as sink:
        return sink.report(query)


def report_from_worker(
    base_url: str, query: ReportQuery, timeout: float = 30.0, admin_token: Any = None
) -> list[dict[str, Any]]:
    """The same report, computed by a running worker."""
    params = {"group_by": query.group_by, **scope_params(query)}
    if query.every:
        params["every"] = f"{query.every}s"
    url = f"{base_url}/report?{urllib.parse.urlencode(params)}"
    try:
        from stream_app.worker.auth import admin_headers  # USAGE_ADMIN_TOKEN, when set

        request = urllib.request.Request(url, headers=admin_headers(admin_token))
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except OSError as exc:
        raise PipelineError(f"the worker holding the embedded store did not answer at {url}: {exc}") from exc


def render(records: list[dict[str, Any]], query: ReportQuery, fmt: str) -> str:
    """Records as `table`, `json` (one array) or `csv`."""
    columns = list(query.columns)
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return out.getvalue()
    return render_table(records, columns)


def render_table(records: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table with a total line."""
    if not records:
        return "(no usage)\n"
    cells = [[_cell(r.get(c)) for c in columns] for r in records]
    totals = totals_row(records, columns)
    widths = [max(len(c), *(len(row[i]) for row in cells + [totals])) for i, c in enumerate(columns)]
    numeric = {c for c in columns if c in TOTAL_COLUMNS or c in TOOL_COLUMNS}

    def line(row: list[str]) -> str:
        return "  ".join(v.rjust(w) if c in numeric else v.ljust(w) for v, w, c in zip(row, widths, columns)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(columns), rule, *(line(r) for r in cells), rule, line(totals)]) + "\n"


def totals_row(records: list[dict[str, Any]], columns: list[str]) -> list[str]:
    from decimal import Decimal

    from stream_app.sink.queries import format_money

    row = []
    for i, c in enumerate(columns):
        if c == "cost_usd":
            row.append(format_money(sum((Decimal(r[c]) for r in records), Decimal(0))))
        elif c in TOTAL_COLUMNS or c in ("calls", "errors"):
            row.append(str(sum(int(r[c]) for r in records)))
        elif c in TOOL_COLUMNS:
            row.append("")
        else:
            row.append("TOTAL" if i == 0 else "")
    return row


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)
