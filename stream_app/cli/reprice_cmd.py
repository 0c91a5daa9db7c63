"""`usage-pipeline reprice`: price stored events again with the current catalog and price file.

    usage-pipeline reprice --since T --until T [--project P] [--dry-run] [--format table|json]

Shows the cost before and after per project. Without `--dry-run` it rewrites the events
whose pricing changes (a newer copy of the row replaces the old one) and recomputes their
windows; running it again changes nothing. While a worker holds the embedded store, the
worker does the work (over HTTP, like `report`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stream_app.settings import PipelineSettings

PROJECT_COLUMNS = (
    "project_id",
    "events",
    "changed",
    "cost_before",
    "cost_after",
    "difference",
    "not_priced_before",
    "not_priced_after",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reprice",
        help="price stored events again with the current catalog and price file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--since", required=True, help="from this event time (RFC 3339, a date, or an age like 30d)")
    parser.add_argument("--until", required=True, help="before this event time")
    parser.add_argument("--project", help="only this project_id")
    parser.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from stream_app.cli.prices_cmd import read_scope
    from stream_app.cli.stored_events import call_worker, from_worker_or_store, scope_params

    scope = read_scope(args)
    body: dict[str, Any] = {**scope_params(scope), "dry_run": bool(args.dry_run)}

    def locally(sink: Any) -> dict[str, Any]:
        from stream_app.core.pricing import CatalogPricer
        from stream_app.sink.queries import reprice_record

        pricer = CatalogPricer.from_settings(settings)
        return reprice_record(sink.reprice(scope, pricer, dry_run=args.dry_run), scope)

    record = from_worker_or_store(
        settings, lambda url: call_worker(url, "/reprice", body=body, timeout=3600.0, admin_token=settings.admin_token), locally
    )
    if record.get("worker_prices_current") is False:
        print(
            "note: the running worker still bills new events with the price file as it was when it started; "
            "restart it so new events get these prices too",
            file=sys.stderr,
        )
    sys.stdout.write(json.dumps(record, indent=2) + "\n" if args.format == "json" else render_summary(record))
    return 0


def render_summary(record: dict[str, Any]) -> str:
    """The run as text: what was examined, what changed, then before/after per project."""
    from stream_app.cli.prices_cmd import render

    scope = f"events from {record['since']} until {record['until']}"
    if record.get("project"):
        scope += f" of project {record['project']}"
    verb = "would change" if record["dry_run"] else "changed"
    lines = [
        f"{scope}: {record['events']} examined, {record['changed']} {verb}; "
        f"cost {record['cost_before']} -> {record['cost_after']} (difference {record['difference']})",
    ]
    if record["dry_run"]:
        lines.append("dry run: nothing was written")
    else:
        lines.append(f"windows recomputed: {record['windows_recomputed']}")
    text = "\n".join(lines) + "\n"
    if record["projects"]:
        text += "\n" + render(record["projects"], PROJECT_COLUMNS, "table")
    return text
