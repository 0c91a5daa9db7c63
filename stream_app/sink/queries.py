"""Billing queries, built as exact SQL strings by pure functions (tested as strings).

Every total reads `usage_events FINAL`: one row per (project_id, event_id), so an event
that arrived twice is counted and billed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stream_app.sink.schema import quote_identifier, quote_string

if TYPE_CHECKING:
    from stream_app.core.repricing import RepriceSummary

GROUP_KEYS: dict[str, tuple[str, ...]] = {
    "project": ("project_id",),
    "agent": ("project_id", "agent_name"),
    "session": ("project_id", "session_id"),
    "model": ("provider", "model"),
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


@dataclass(frozen=True)
class ReportQuery:
    """What `usage-pipeline report` asks for."""

    group_by: str
    project: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.group_by not in GROUP_KEYS:
            raise ValueError(f"group_by must be one of {', '.join(GROUP_KEYS)}, not {self.group_by!r}")

    @property
    def key_columns(self) -> tuple[str, ...]:
        return GROUP_KEYS[self.group_by]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key_columns + TOTAL_COLUMNS


def report_sql(database: str, query: ReportQuery) -> str:
    """Billing totals per group, largest cost first, over [since, until)."""
    keys = ", ".join(query.key_columns)
    where = _where_clause(query)
    return (
        f"SELECT {keys}, count() AS events, sum(input_tokens) AS input_tokens, "
        "sum(output_tokens) AS output_tokens, sum(cache_read_tokens) AS cache_read_tokens, "
        "sum(cache_write_tokens) AS cache_write_tokens, sum(reasoning_tokens) AS reasoning_tokens, "
        "sum(cost_usd) AS cost_usd, countIf(price_status != 'priced') AS unpriced_events "
        f"FROM {quote_identifier(database)}.usage_events FINAL{where} "
        f"GROUP BY {keys} ORDER BY cost_usd DESC, {keys}"
    )


def _where_clause(query: ReportQuery | EventScope) -> str:
    conditions = _scope_conditions(query)
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def _scope_conditions(query: ReportQuery | EventScope) -> list[str]:
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
    """Rows as the JSON records SPEC.md §4 fixes: ints for tokens, a decimal string for cost."""
    records = []
    for row in rows:
        record = dict(zip(query.columns, row, strict=True))
        if "session_id" in record and record["session_id"] == "":
            record["session_id"] = None
        for name in TOTAL_COLUMNS:
            if name == "cost_usd":
                record[name] = format_money(Decimal(record[name]))
            else:
                record[name] = int(record[name])
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
    where = " AND ".join(["price_status != 'priced'", *_scope_conditions(scope)])
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
    where = " AND ".join(["provider_cost_usd IS NOT NULL", *_scope_conditions(scope)])
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

    conditions = _scope_conditions(scope)
    if after is not None:
        conditions.append(f"(project_id, event_id) > ({quote_string(after[0])}, {quote_string(after[1])})")
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    return (
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM {quote_identifier(database)}.usage_events FINAL{where} "
        f"ORDER BY project_id, event_id LIMIT {int(limit)}"
    )


def stale_windows_sql(database: str, scope: EventScope, window_seconds: int) -> str:
    """(project_id, window start) of project windows whose stored totals differ from their events.

    Covers every window that overlaps the scope. A window row missing altogether is stale
    too (the LEFT JOIN leaves zeros). Recomputing these makes windows follow the events
    even if an earlier run stopped between rewriting events and rewriting windows.
    """
    db = quote_identifier(database)
    conditions = []
    if scope.project is not None:
        conditions.append(f"project_id = {quote_string(scope.project)}")
    if scope.since is not None:
        first = int(scope.since.timestamp()) // int(window_seconds) * int(window_seconds)
        conditions.append(f"window_start >= toDateTime({first}, 'UTC')")
    if scope.until is not None:
        conditions.append(f"window_start < fromUnixTimestamp64Micro({_epoch_micros(scope.until)}, 'UTC')")
    events_where = " WHERE " + " AND ".join(conditions) if conditions else ""
    windows_where = " WHERE " + " AND ".join(["grouping = 'project'", *conditions])
    return f"""SELECT e.project_id, toUInt32(e.window_start) AS start
FROM (
    SELECT project_id, window_start, count() AS events, sum(cost_usd) AS cost_usd,
        countIf(price_status != 'priced') AS unpriced_events
    FROM {db}.usage_events FINAL{events_where}
    GROUP BY project_id, window_start
) AS e
LEFT JOIN (
    SELECT project_id, window_start, events, cost_usd, unpriced_events
    FROM {db}.usage_windows FINAL{windows_where}
) AS w ON e.project_id = w.project_id AND e.window_start = w.window_start
WHERE w.events != e.events OR w.cost_usd != e.cost_usd OR w.unpriced_events != e.unpriced_events
ORDER BY e.project_id, start"""


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
