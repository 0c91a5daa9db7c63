"""`usage-pipeline prices`: models seen without a price, provider cost beside ours, the price file.

    usage-pipeline prices missing [--since T] [--until T] [--project P] [--format table|json|csv] [--fail]
    usage-pipeline prices compare [--since T] [--until T] [--project P] [--format ...]
    usage-pipeline prices check [FILE]
    usage-pipeline prices quote --provider P --model M [--input N --output N ...] [--at T] [--project P]

`missing` and `compare` read stored events: while a worker holds the embedded store they
ask that worker over HTTP (like `report`), otherwise they open ClickHouse. `check` and
`quote` need no store: they read the catalog and the price file only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from typing import TYPE_CHECKING, Any

from stream_app.cli.stored_events import call_worker, from_worker_or_store, scope_params
from stream_app.errors import PipelineError
from stream_app.settings import PipelineSettings
from stream_app.sink.queries import MISSING_PRICE_COLUMNS

if TYPE_CHECKING:
    from stream_app.sink.queries import EventScope

# The table leaves out first_seen to stay readable; json and csv keep every column.
MISSING_TABLE_COLUMNS = tuple(column for column in MISSING_PRICE_COLUMNS if column != "first_seen")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prices",
        help="models without a price, provider-reported cost, the price file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="prices_command", required=True, metavar="SUBCOMMAND")

    missing = commands.add_parser(
        "missing",
        help="models seen without a full price, with event counts and tokens",
        description=(
            "Models whose stored events are not fully priced (status partial, provider_reported or "
            "unpriced), with event counts, tokens and why. Add an [[override]] or [[alias]] to the price "
            "file, restart workers, then `usage-pipeline reprice` the period before the invoice goes out."
        ),
    )
    _scope_arguments(missing)
    missing.add_argument("--fail", action="store_true", help="exit with status 1 when any model is listed")
    missing.set_defaults(handler=run_missing)

    compare = commands.add_parser(
        "compare",
        help="our cost beside the cost providers reported (provider_cost)",
        description="Per model, over events that carry provider_cost: our cost, theirs, and ours minus theirs.",
    )
    _scope_arguments(compare)
    compare.set_defaults(handler=run_compare)

    check = commands.add_parser(
        "check",
        help="validate a price file (default: USAGE_PRICE_OVERRIDES_FILE) and list its entries",
        description="Read and validate a price file the way a worker does at start; list what it says.",
    )
    check.add_argument("file", nargs="?", help="the TOML price file (default: USAGE_PRICE_OVERRIDES_FILE)")
    check.set_defaults(handler=run_check)

    quote = commands.add_parser(
        "quote",
        help="how one call would be priced now: cost, status, source",
        description="Price one call with the catalog and the price file, and say how it was priced.",
    )
    quote.add_argument("--provider", required=True)
    quote.add_argument("--model", required=True)
    quote.add_argument("--project", help="project_id (project overrides apply to it)")
    quote.add_argument("--at", help="event time (RFC 3339, a date, or an age like 2h; default now)")
    quote.add_argument("--input", type=int, default=0, help="input tokens, cache included")
    quote.add_argument("--cache-read", type=int, default=0)
    quote.add_argument("--cache-write", type=int, default=0)
    quote.add_argument("--output", type=int, default=0, help="output tokens, reasoning included")
    quote.add_argument("--reasoning", type=int, default=0)
    quote.add_argument("--provider-cost", help="provider-reported cost, a decimal string")
    quote.add_argument("--format", choices=("table", "json"), default="table")
    quote.set_defaults(handler=run_quote)


def _scope_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="from this event time (RFC 3339, a date, or an age like 30d)")
    parser.add_argument("--until", help="before this event time")
    parser.add_argument("--project", help="only this project_id")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")


def read_scope(args: argparse.Namespace) -> EventScope:
    """The --since/--until/--project arguments as an EventScope."""
    from stream_app.core.times import parse_time
    from stream_app.sink.queries import EventScope

    try:
        return EventScope(
            project=args.project,
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
        )
    except ValueError as exc:
        raise PipelineError(str(exc)) from None


def run_missing(args: argparse.Namespace, settings: PipelineSettings) -> int:
    scope = read_scope(args)
    records = from_worker_or_store(
        settings,
        lambda url: call_worker(url, "/prices/missing", params=scope_params(scope), admin_token=settings.admin_token),
        lambda sink: sink.missing_prices(scope),
    )
    columns = MISSING_TABLE_COLUMNS if args.format == "table" else MISSING_PRICE_COLUMNS
    sys.stdout.write(render(records, columns, args.format, empty="(every event in the range is priced)"))
    return 1 if args.fail and records else 0


def run_compare(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from stream_app.sink.queries import PROVIDER_COST_COLUMNS

    scope = read_scope(args)
    records = from_worker_or_store(
        settings,
        lambda url: call_worker(url, "/prices/compare", params=scope_params(scope), admin_token=settings.admin_token),
        lambda sink: sink.provider_costs(scope),
    )
    sys.stdout.write(render(records, PROVIDER_COST_COLUMNS, args.format, empty="(no event carries provider_cost)"))
    return 0


def run_check(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from stream_app.core.price_overrides import load_price_overrides
    from stream_app.core.pricing import CatalogPricer

    path = args.file or settings.price_overrides_file
    if path is None:
        raise PipelineError("no price file: pass one (`prices check prices.toml`) or set USAGE_PRICE_OVERRIDES_FILE")
    pricer = CatalogPricer(load_price_overrides(path))  # validates the aliases against the catalog too
    overrides = pricer.overrides
    out = [f"{overrides.origin}: OK, {len(overrides.overrides)} overrides, {len(overrides.aliases)} aliases\n"]
    if overrides.overrides:
        rows = [
            {
                "source": o.source,
                "provider": o.provider,
                "model": o.model,
                "project": o.project or "(all)",
                "effective_from": o.effective_from.isoformat().replace("+00:00", "Z") if o.effective_from else "(always)",
                "input_mtok": str(o.input_mtok),
                "cache_read_mtok": "-" if o.cache_read_mtok is None else str(o.cache_read_mtok),
                "cache_write_mtok": "-" if o.cache_write_mtok is None else str(o.cache_write_mtok),
                "output_mtok": str(o.output_mtok),
            }
            for o in overrides.overrides
        ]
        out.append("\n" + render(rows, tuple(rows[0]), "table"))
    if overrides.aliases:
        rows = []
        for a in overrides.aliases:
            resolved = pricer.resolve(a.provider, a.model)
            rows.append(
                {
                    "provider": a.provider,
                    "model": a.model,
                    "priced_as": f"{resolved.provider.id}/{resolved.model.id}" if resolved.model is not None else "-",
                }
            )
        out.append("\n" + render(rows, tuple(rows[0]), "table"))
    sys.stdout.write("".join(out))
    return 0


def run_quote(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from datetime import datetime, timezone
    from decimal import Decimal, InvalidOperation

    from stream_app.core.linear_price import TokenCounts
    from stream_app.core.pricing import CatalogPricer
    from stream_app.core.times import parse_time
    from stream_app.sink.queries import format_money

    try:
        at = parse_time(args.at) if args.at else datetime.now(timezone.utc)
        provider_cost = Decimal(args.provider_cost) if args.provider_cost else None
    except (ValueError, InvalidOperation) as exc:
        raise PipelineError(f"cannot read the call: {exc}") from None
    counts = TokenCounts(args.input, args.cache_read, args.cache_write, args.output, args.reasoning)
    if min(args.input, args.cache_read, args.cache_write, args.output, args.reasoning) < 0 or counts.cache_read + counts.cache_write > counts.input or counts.reasoning > counts.output:
        raise PipelineError("token counts must be >= 0, cache read + write <= input, reasoning <= output")
    priced = CatalogPricer.from_settings(settings).price_usage(
        args.provider, args.model, args.project, at, counts, provider_cost
    )
    record = {
        "provider": args.provider,
        "model": args.model,
        "at": at.isoformat().replace("+00:00", "Z"),
        "cost_usd": format_money(priced.cost_usd),
        "status": priced.status,
        "source": priced.source,
        "catalog_provider": priced.catalog_provider,
        "catalog_model": priced.catalog_model,
        "detail": priced.detail,
    }
    if args.format == "json":
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
    else:
        width = max(len(k) for k in record)
        sys.stdout.write("".join(f"{k.ljust(width)}  {v if v != '' else '-'}\n" for k, v in record.items()))
    return 0


def render(records: list[dict[str, Any]], columns: tuple[str, ...], fmt: str, *, empty: str = "(none)") -> str:
    """Records as an aligned `table`, one JSON array, or `csv`."""
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        return out.getvalue()
    if not records:
        return empty + "\n"
    cells = [[_cell(r.get(c)) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(_is_number(r.get(c)) for r in records) for c in columns]

    def line(row: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(row, widths, numeric, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(list(columns)), rule, *(line(r) for r in cells)]) + "\n"


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return value is None
