"""Billing queries, built as exact SQL strings by pure functions (tested as strings).

Billing totals read the window rows (`report_sql`); the pricing tools (`prices missing`,
`prices compare`, `reprice`) read billed events, one row per (project_id, event_id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stream_app.core.window_cells import cell_levels
from stream_app.sink.levels import level_pieces, pieces_condition
from stream_app.sink.schema import quote_identifier, quote_string

if TYPE_CHECKING:
    from stream_app.core.repricing import RepriceSummary

GROUP_KEYS: dict[str, tuple[str, ...]] = {
    "project": ("project_id",),
    "agent": ("project_id", "agent_name"),
    "session": ("project_id", "session_id"),
    "model": ("provider", "model"),
    "tool": ("project_id", "tool_name"),
}

TOTAL_COLUMNS: tuple[str, ...] = (
    "events",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_events",
)

TOOL_COLUMNS: tuple[str, ...] = ("calls", "errors", "avg_duration_ms", "p95_duration_ms")

# `report --every` takes these, and any whole multiple of the window size in seconds.
EVERY_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_every(text: str, window_seconds: int) -> int:
    """`5m` -> 300, checked to be a whole multiple of the window size."""
    unit = text[-1:].lower()
    try:
        seconds = int(text[:-1]) * EVERY_UNITS[unit]
    except (KeyError, ValueError):
        raise ValueError(f"--every {text!r}: use a number and a unit, e.g. 1m, 5m, 1h, 1d") from None
    if seconds <= 0 or seconds % window_seconds:
        raise ValueError(
            f"--every {text}: buckets must be whole multiples of the {window_seconds} s window "
            f"(USAGE_WINDOW_SECONDS)"
        )
    return seconds


@dataclass(frozen=True)
class ReportQuery:
    """What `usage-pipeline report` asks for. `every` is a bucket size in seconds, or None."""

    group_by: str
    project: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    every: int | None = None

    def __post_init__(self) -> None:
        if self.group_by not in GROUP_KEYS:
            raise ValueError(f"group_by must be one of {', '.join(GROUP_KEYS)}, not {self.group_by!r}")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"--since {self.since.isoformat()} is not before --until {self.until.isoformat()}")
        if self.every is not None and self.every <= 0:
            raise ValueError("--every must be positive")

    @property
    def key_columns(self) -> tuple[str, ...]:
        return GROUP_KEYS[self.group_by]

    @property
    def value_columns(self) -> tuple[str, ...]:
        return TOOL_COLUMNS if self.group_by == "tool" else TOTAL_COLUMNS

    @property
    def columns(self) -> tuple[str, ...]:
        bucket = ("window_start",) if self.every else ()
        return self.key_columns + bucket + self.value_columns


def window_range(query: ReportQuery, window_seconds: int) -> tuple[int | None, int | None]:
    """[since, until) widened to whole windows (whole buckets with `--every`), as epoch seconds."""
    size_us = (query.every or window_seconds) * 1_000_000
    since = None if query.since is None else _epoch_micros(query.since) // size_us * size_us // 1_000_000
    until = None if query.until is None else -(-_epoch_micros(query.until) // size_us) * size_us // 1_000_000
    return since, until


def report_sql(database: str, query: ReportQuery, window_seconds: int) -> str:
    """Totals per group (and bucket) from the window cells, largest first.

    Reads `usage_window_cells` in whole days, whole hours and single windows
    (`level_pieces`), or `usage_tool_windows` for tools: never raw events, so the cost
    follows the range asked for, not the history. `FINAL` keeps each cell's newest row
    within its month partition.
    """
    db = quote_identifier(database)
    conditions = [] if query.group_by == "tool" else [f"grouping = {quote_string(query.group_by)}"]
    if query.project is not None:
        conditions.append(f"project_id = {quote_string(query.project)}")
    since, until = window_range(query, window_seconds)
    if query.group_by == "tool":
        if since is not None:
            conditions.append(f"window_start >= toDateTime({since}, 'UTC')")
        if until is not None:
            conditions.append(f"window_start < toDateTime({until}, 'UTC')")
    else:
        conditions.append(pieces_condition(level_pieces(since, until, cell_levels(window_seconds), query.every)))
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    keys = list(query.key_columns)
    selected = list(keys)
    if query.every:
        selected.append(f"toDateTime(intDiv(toUInt32(window_start), {int(query.every)}) * {int(query.every)}, 'UTC') AS bucket")
        keys.append("bucket")
    group = ", ".join(keys)
    if query.group_by == "tool":
        values = (
            "sum(calls) AS calls, sum(errors) AS errors, sum(length(durations_ms)) AS timed, "
            "if(timed = 0, NULL, avgArray(durations_ms)) AS avg_duration_ms, "
            "if(timed = 0, NULL, quantileExactArray(0.95)(durations_ms)) AS p95_duration_ms"
        )
        table, order = "usage_tool_windows", "calls DESC"
        outer = ", ".join([*keys, *TOOL_COLUMNS])
        return (
            f"SELECT {outer} FROM (SELECT {', '.join(selected)}, {values} FROM {db}.{table} FINAL{where} "
            f"GROUP BY {group}) ORDER BY {'bucket, ' if query.every else ''}{order}, {', '.join(query.key_columns)}"
            f"{_FINAL_SETTINGS}"
        )
    values = (
        "sum(events) AS events, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
        "sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd, sum(unpriced_events) AS unpriced_events"
    )
    return (
        f"SELECT {', '.join(selected)}, {values} FROM {db}.usage_window_cells FINAL{where} GROUP BY {group} "
        f"ORDER BY {'bucket, ' if query.every else ''}cost_usd DESC, {', '.join(query.key_columns)}{_FINAL_SETTINGS}"
    )


# How `report_json_sql` asks ClickHouse to spell the records SPEC.md §4 fixes. Inline in the
# statement (settings passed beside it cost the embedded engine a round trip each), and one
# thread: a billing query reads at most some thousands of cells, where a parallel
# pipeline's start-up costs more than it saves (measured: p99 43 ms vs 53 ms at 10M events).
JSON_SETTINGS = {
    "output_format_json_array_of_rows": 1,
    "output_format_json_quote_64bit_integers": 0,
    "output_format_decimal_trailing_zeros": 0,
    "do_not_merge_across_partitions_select_final": 1,
    "max_threads": 1,
}


def report_json_sql(database: str, query: ReportQuery, window_seconds: int) -> str:
    """`report_sql`'s totals as the JSON records of `report_records`, spelled by ClickHouse (FORMAT JSONEachRow).

    A large answer (the last hour by session: 10,000 rows) costs the engine a few
    milliseconds to write as JSON, and Python tens to build and encode as dicts. Same
    records: no session is null, buckets are RFC 3339 UTC, money a plain decimal string.
    """
    inner = report_sql(database, query, window_seconds).removesuffix(_FINAL_SETTINGS).rsplit(" ORDER BY ", 1)[0]
    selected = []
    for name in query.columns:
        if name == "session_id":
            selected.append("nullIf(r.session_id, '') AS session_id")
        elif name == "window_start":
            selected.append("formatDateTime(r.bucket, '%Y-%m-%dT%H:%i:%SZ', 'UTC') AS window_start")
        elif name == "cost_usd":
            selected.append("toString(r.cost_usd) AS cost_usd")
        else:
            selected.append(f"r.{name} AS {name}")
    order = ["r.bucket"] if query.every else []
    order.append("r.calls DESC" if query.group_by == "tool" else "r.cost_usd DESC")
    order += [f"r.{name}" for name in query.key_columns]
    settings = ", ".join(f"{name} = {value}" for name, value in JSON_SETTINGS.items())
    return f"SELECT {', '.join(selected)} FROM ({inner}) AS r ORDER BY {', '.join(order)} SETTINGS {settings}"


# A cell's rows (and a message's tool rows) share a window_start and so a month partition:
# FINAL never needs to merge across partitions, which keeps it a streaming merge of the rows in range.
_FINAL_SETTINGS = " SETTINGS do_not_merge_across_partitions_select_final = 1"


def _where_clause(query: ReportQuery | EventScope) -> str:
    conditions = scope_conditions(query)
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def scope_conditions(query: ReportQuery | EventScope) -> list[str]:
    conditions = []
    if query.project is not None:
        conditions.append(f"project_id = {quote_string(query.project)}")
    if query.since is not None:
        conditions.append(f"timestamp >= fromUnixTimestamp64Micro({_epoch_micros(query.since)}, 'UTC')")
    if query.until is not None:
        conditions.append(f"timestamp < fromUnixTimestamp64Micro({_epoch_micros(query.until)}, 'UTC')")
    return conditions


def _epoch_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no UTC offset")
    return int(moment.timestamp() * 1_000_000) if moment.microsecond == 0 else (
        int(moment.replace(microsecond=0).timestamp()) * 1_000_000 + moment.microsecond
    )


def report_records(query: ReportQuery, rows: list[tuple]) -> list[dict[str, Any]]:
    """Rows as the JSON records SPEC.md §4 fixes: ints for counts, a decimal string for cost."""
    records = []
    for row in rows:
        record = dict(zip(query.columns, row, strict=True))
        if "session_id" in record and record["session_id"] == "":
            record["session_id"] = None
        if "window_start" in record:
            record["window_start"] = _rfc3339(record["window_start"])
        for name in query.value_columns:
            value = record[name]
            if name == "cost_usd":
                record[name] = format_money(Decimal(value))
            elif name in ("avg_duration_ms", "p95_duration_ms"):
                record[name] = None if value is None else float(value)
            else:
                record[name] = int(value)
        records.append(record)
    return records


def format_money(amount: Decimal) -> str:
    """A Decimal as a plain decimal string without exponent or trailing zeros."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


# --- pricing: models without a price, provider-reported cost, repricing ----------------------


@dataclass(frozen=True)
class EventScope:
    """Which stored events: event time in [since, until), optionally one project."""

    project: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"--since {self.since.isoformat()} is not before --until {self.until.isoformat()}")


MISSING_PRICE_COLUMNS: tuple[str, ...] = (
    "provider",
    "model",
    "price_status",
    "events",
    "projects",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "provider_cost_usd",
    "first_seen",
    "last_seen",
    "detail",
)


def missing_prices_sql(database: str, scope: EventScope) -> str:
    """Models whose events are not fully priced (status != 'priced'), most events first."""
    where = " AND ".join(["price_status != 'priced'", *scope_conditions(scope)])
    return (
        "SELECT provider, model, price_status, count() AS events, uniqExact(project_id) AS projects, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
        "sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd, "
        "sum(provider_cost_usd) AS provider_cost_usd, min(timestamp) AS first_seen, max(timestamp) AS last_seen, "
        "min(price_detail) AS detail "
        f"FROM {quote_identifier(database)}.usage_events FINAL WHERE {where} "
        "GROUP BY provider, model, price_status ORDER BY events DESC, provider, model, price_status"
    )


PROVIDER_COST_COLUMNS: tuple[str, ...] = (
    "provider",
    "model",
    "events",
    "cost_usd",
    "provider_cost_usd",
    "difference_usd",
    "not_priced_events",
)


def provider_cost_sql(database: str, scope: EventScope) -> str:
    """Our cost beside the provider's own, per model, over events that carry `provider_cost`.

    `difference_usd` is ours minus theirs; largest absolute difference first.
    """
    # The filter sits in a subquery: in ClickHouse an alias like `provider_cost_usd` would
    # otherwise shadow the column of the same name in WHERE.
    where = " AND ".join(["provider_cost_usd IS NOT NULL", *scope_conditions(scope)])
    return (
        "SELECT provider, model, count() AS events, sum(ours) AS cost_usd, sum(theirs) AS provider_cost_usd, "
        "cost_usd - provider_cost_usd AS difference_usd, countIf(status != 'priced') AS not_priced_events "
        "FROM (SELECT provider, model, cost_usd AS ours, assumeNotNull(provider_cost_usd) AS theirs, "
        f"price_status AS status FROM {quote_identifier(database)}.usage_events FINAL WHERE {where}) "
        "GROUP BY provider, model ORDER BY abs(difference_usd) DESC, provider, model"
    )


def reprice_page_sql(database: str, scope: EventScope, after: tuple[str, str] | None, limit: int) -> str:
    """One page of stored events in the scope, every column, in key order after `after`.

    Keyset paging on the table's own key (project_id, event_id), so a page costs the same
    however deep into the range it is, and rows re-inserted meanwhile are not seen twice.
    """
    from stream_app.core.rows import EVENT_COLUMNS  # not at import: `report` need not load the price catalog

    conditions = scope_conditions(scope)
    if after is not None:
        conditions.append(f"(project_id, event_id) > ({quote_string(after[0])}, {quote_string(after[1])})")
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    return (
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM {quote_identifier(database)}.usage_events FINAL{where} "
        f"ORDER BY project_id, event_id LIMIT {int(limit)}"
    )


def pricing_records(columns: tuple[str, ...], rows: list[tuple]) -> list[dict[str, Any]]:
    """Rows as JSON-ready records: ints for counts, decimal strings for money, RFC 3339 for times."""
    records = []
    for row in rows:
        record: dict[str, Any] = {}
        for name, value in zip(columns, row, strict=True):
            if isinstance(value, Decimal):
                value = format_money(value)
            elif isinstance(value, datetime):
                value = _rfc3339(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                value = int(value)
            record[name] = value
        records.append(record)
    return records


def reprice_record(summary: RepriceSummary, scope: EventScope) -> dict[str, Any]:
    """A reprice run as one JSON-ready record: totals, then before/after per project."""
    projects = sorted(summary.projects.values(), key=lambda p: (-abs(p.difference), p.project_id))
    return {
        "dry_run": summary.dry_run,
        "project": scope.project,
        "since": _rfc3339(scope.since),
        "until": _rfc3339(scope.until),
        "events": summary.events,
        "changed": summary.changed,
        "cost_before": format_money(sum((p.cost_before for p in projects), Decimal(0))),
        "cost_after": format_money(sum((p.cost_after for p in projects), Decimal(0))),
        "difference": format_money(sum((p.difference for p in projects), Decimal(0))),
        "windows_recomputed": summary.windows_recomputed,
        "projects": [
            {
                "project_id": p.project_id,
                "events": p.events,
                "changed": p.changed,
                "cost_before": format_money(p.cost_before),
                "cost_after": format_money(p.cost_after),
                "difference": format_money(p.difference),
                "not_priced_before": p.not_priced_before,
                "not_priced_after": p.not_priced_after,
            }
            for p in projects
        ],
    }


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
