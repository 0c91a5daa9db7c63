"""Billing queries, built as exact SQL strings by pure functions (tested as strings).

Every total reads `usage_events FINAL`: one row per (project_id, event_id), so an event
that arrived twice is counted and billed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from stream_app.sink.schema import quote_identifier, quote_string

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


def _where_clause(query: ReportQuery) -> str:
    conditions = []
    if query.project is not None:
        conditions.append(f"project_id = {quote_string(query.project)}")
    if query.since is not None:
        conditions.append(f"timestamp >= fromUnixTimestamp64Micro({_epoch_micros(query.since)}, 'UTC')")
    if query.until is not None:
        conditions.append(f"timestamp < fromUnixTimestamp64Micro({_epoch_micros(query.until)}, 'UTC')")
    return " WHERE " + " AND ".join(conditions) if conditions else ""


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
