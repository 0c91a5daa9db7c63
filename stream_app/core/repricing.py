"""Reprice stored events: compare each row's pricing with what the current prices say.

Pure: rows come in as stored (`EVENT_COLUMNS` order, as ClickHouse returns them), the
pricer is passed in, and what comes out is the rows to re-insert plus a per-project
before/after summary. A row is rewritten only when its cost, status, source, catalog
match or detail would change, with a newer `ingested_at` so the ReplacingMergeTree keeps
the new copy; everything else about the event stays as it was. Running the same reprice
twice therefore rewrites nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from stream_app.core.linear_price import TokenCounts
from stream_app.core.pricing import PricedCost, PriceStatus
from stream_app.core.rows import EVENT_COLUMNS, PRICING_COLUMNS, pricing_values

ZERO = Decimal(0)
_AT = {name: i for i, name in enumerate(EVENT_COLUMNS)}
_DATETIME_COLUMNS = ("timestamp", "window_start", "ingested_at")


class UsagePricer(Protocol):
    def price_usage(
        self,
        provider: str,
        model: str,
        project_id: str | None,
        timestamp: datetime,
        counts: TokenCounts,
        provider_cost: Decimal | None = None,
    ) -> PricedCost: ...


@dataclass
class ProjectChange:
    """Before and after for one project's events in the scope."""

    project_id: str
    events: int = 0
    changed: int = 0
    cost_before: Decimal = ZERO
    cost_after: Decimal = ZERO
    not_priced_before: int = 0
    not_priced_after: int = 0

    @property
    def difference(self) -> Decimal:
        return self.cost_after - self.cost_before


@dataclass
class RepriceSummary:
    """What a reprice run found (and, unless a dry run, wrote)."""

    dry_run: bool
    projects: dict[str, ProjectChange] = field(default_factory=dict)
    windows_recomputed: int = 0

    def project(self, project_id: str) -> ProjectChange:
        found = self.projects.get(project_id)
        if found is None:
            found = self.projects[project_id] = ProjectChange(project_id)
        return found

    @property
    def changed(self) -> int:
        return sum(p.changed for p in self.projects.values())

    @property
    def events(self) -> int:
        return sum(p.events for p in self.projects.values())


def reprice_rows(
    rows: Iterable[tuple[Any, ...]], pricer: UsagePricer, *, generation: int, summary: RepriceSummary
) -> list[tuple[Any, ...]]:
    """Price stored rows again; returns the rows that changed, ready to insert."""
    changed: list[tuple[Any, ...]] = []
    for row in rows:
        project_id = row[_AT["project_id"]]
        timestamp = _utc(row[_AT["timestamp"]])
        counts = TokenCounts(
            int(row[_AT["input_tokens"]]),
            int(row[_AT["cache_read_tokens"]]),
            int(row[_AT["cache_write_tokens"]]),
            int(row[_AT["output_tokens"]]),
            int(row[_AT["reasoning_tokens"]]),
        )
        priced = pricer.price_usage(
            row[_AT["provider"]], row[_AT["model"]], project_id, timestamp, counts, row[_AT["provider_cost_usd"]]
        )
        after = pricing_values(priced)
        before = tuple(row[_AT[name]] for name in PRICING_COLUMNS)
        totals = summary.project(project_id)
        totals.events += 1
        totals.cost_before += before[0]
        totals.cost_after += after[0]
        totals.not_priced_before += before[1] != PriceStatus.PRICED
        totals.not_priced_after += after[1] != PriceStatus.PRICED
        if after == before:  # Decimal compares by value: 0.0025 == 0.002500000000000000
            continue
        totals.changed += 1
        new = list(row)
        for name, value in zip(PRICING_COLUMNS, after, strict=True):
            new[_AT[name]] = value
        for name in _DATETIME_COLUMNS:
            new[_AT[name]] = _utc(new[_AT[name]])
        new[_AT["price_generation"]] = generation
        changed.append(tuple(new))
    return changed


def _utc(moment: datetime) -> datetime:
    """ClickHouse returns naive datetimes for UTC columns; make them explicit."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
