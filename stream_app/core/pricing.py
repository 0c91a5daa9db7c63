"""Price one event: local overrides, then the genai-prices catalog, at the event's own timestamp.

Pure and offline: the catalog is the data bundled with the installed genai-prices
release, never fetched at run time (nothing here calls `UpdatePrices`).

How an event is priced, first match wins (README "Pricing"):

1. an `[[override]]` in the price file in force at the event's timestamp, for its
   project or for all projects, matched by the model name as it arrives or by the catalog
   model it resolves to -> cost by the override's prices, source `override:FILE#NAME`;
2. the catalog price in force at the event's timestamp, found by the model name as it
   arrives, an `[[alias]]`, or one of the explicit name rules of `model_names` -> cost
   exactly as genai-prices' `calc_price` computes it, source `genai-prices <version>`;
3. no price, but the event carries `provider_cost` -> that cost, status
   `provider_reported`, source `provider_cost`;
4. otherwise cost 0, status `unpriced`: visible on every report and in `prices missing`.

Statuses: `priced`; `partial` when some tokens of the event have no price of their own
(e.g. cache writes for a model without a cache-write price, billed at the input price as
genai-prices does, or output of a model without an output price, not billed);
`provider_reported`; `unpriced`. Reasoning tokens are part of output and billed as
output, unless the catalog has a separate reasoning price for the model.

Where each part lives: `model_resolution` says what a provider and model name mean to the
catalog and the price file (the catalog lookup, cached per name pair); `linear_price`
holds the cost arithmetic, catalog prices fitted once into exact linear functions of the
token counts so an event costs a few Decimal products instead of a `calc_price` call;
this module puts them together in the order above and says how each event was priced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from schemas import UsageTrackingEvent
from stream_app.core.linear_price import (
    ZERO,
    LinearPrice,
    TokenCounts,
    fit_linear_price,
    override_linear_price,
    partial_detail,
    tier_region,
    tier_thresholds,
    token_counts,
    unpriced_components,
)
from stream_app.core.model_names import normalize_provider
from stream_app.core.model_resolution import CATALOG_SOURCE, ModelResolver, Resolution
from stream_app.core.price_overrides import PriceOverride, PriceOverrides, load_price_overrides

if TYPE_CHECKING:
    from stream_app.settings import PipelineSettings

PROVIDER_COST_SOURCE = "provider_cost"
# ClickHouse stores cost as Decimal(38, 18): costs are rounded (half-even) to this on write.
STORED_COST_QUANTUM = Decimal("1e-18")
_WIDE = Context(prec=80)


class PriceStatus:
    PRICED = "priced"
    PARTIAL = "partial"
    PROVIDER_REPORTED = "provider_reported"
    UNPRICED = "unpriced"
    ALL = (PRICED, PARTIAL, PROVIDER_REPORTED, UNPRICED)


class PricedCost(msgspec.Struct, frozen=True, gc=False):
    """What an event costs and how that was decided (a struct: one is made per event)."""

    cost_usd: Decimal
    status: str
    source: str  # which price: "genai-prices 0.2.3", "override:prices.toml#acme-gpt-4o" or "provider_cost"
    catalog_provider: str  # provider id the catalog matched ("" when none)
    catalog_model: str  # model id the catalog matched ("" when none)
    detail: str = ""  # how the name was matched, why a price is missing or partial


def stored_cost(cost: Decimal) -> Decimal:
    """The cost as ClickHouse's Decimal(38, 18) holds it, rounded half-even (not truncated)."""
    return cost.quantize(STORED_COST_QUANTUM, rounding=ROUND_HALF_EVEN, context=_WIDE)


@dataclass
class _PriceShape:
    """What is cached per catalog price object: its tiers, gaps and fitted regions."""

    model_price: Any  # held so its id() cannot be reused while cached
    thresholds: tuple[int, ...]
    unpriced: frozenset[str]
    fits: dict[int, LinearPrice | None]


class CatalogPricer:
    """Prices events from overrides and the bundled catalog; caches lookups and fitted prices."""

    def __init__(self, overrides: PriceOverrides | None = None) -> None:
        self.overrides = overrides or PriceOverrides()
        self._shapes: dict[int, _PriceShape] = {}
        self._override_prices = {entry.source: override_linear_price(entry) for entry in self.overrides.overrides}
        self._resolver = ModelResolver(self.overrides)

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> CatalogPricer:
        """The pricer a worker or command uses: catalog plus `USAGE_PRICE_OVERRIDES_FILE`."""
        return cls(load_price_overrides(settings.price_overrides_file))

    def __call__(self, event: UsageTrackingEvent) -> PricedCost:
        return self.price(event)

    def price(self, event: UsageTrackingEvent) -> PricedCost:
        """The cost of one event, by the price in force at `event.timestamp`."""
        return self.price_usage(
            event.provider, event.model, event.project_id, event.timestamp, token_counts(event), event.provider_cost
        )

    def price_usage(
        self,
        provider: str,
        model: str,
        project_id: str | None,
        timestamp: datetime,
        counts: TokenCounts,
        provider_cost: Decimal | None = None,
    ) -> PricedCost:
        """The cost of one call given by its parts (what `reprice` has from a stored row)."""
        found = self._resolver.resolve(provider, model)
        for schedule in found.schedules:
            entry = schedule.in_force(project_id, timestamp)
            if entry is not None:
                return self._override_cost(entry, found, counts)
        if found.model is None:
            return self._no_price(found, found.miss, provider_cost)
        try:
            cost, unpriced = self._catalog_cost(found, timestamp, counts)
        except Exception as exc:  # a catalog entry that cannot price this usage: visible, not $0
            return self._no_price(found, f"catalog error: {exc}", provider_cost)
        return self._result(cost, CATALOG_SOURCE, found, partial_detail(unpriced, counts))

    def resolve(self, provider: str, model: str) -> Resolution:
        """How a provider and model name are understood (cached)."""
        return self._resolver.resolve(provider, model)

    def canonical_provider(self, name: str) -> str:
        """The catalog's id for a provider name, or the normalized name if the catalog has none."""
        return self._resolver.canonical_provider(name)

    # --- internals -------------------------------------------------------------------------

    def _result(self, cost: Decimal, source: str, found: Resolution, partial: str) -> PricedCost:
        if partial:
            status = PriceStatus.PARTIAL
            detail = f"{found.note}; {partial}" if found.note else partial
        else:
            status = PriceStatus.PRICED
            detail = found.note
        if found.model is None:
            return PricedCost(cost, status, source, "", "", detail)
        return PricedCost(cost, status, source, found.provider.id, found.model.id, detail)

    def _no_price(self, found: Resolution, note: str, provider_cost: Decimal | None) -> PricedCost:
        if provider_cost is not None:
            return PricedCost(provider_cost, PriceStatus.PROVIDER_REPORTED, PROVIDER_COST_SOURCE, "", "", note)
        return PricedCost(ZERO, PriceStatus.UNPRICED, CATALOG_SOURCE, "", "", note)

    def _override_cost(self, entry: PriceOverride, found: Resolution, counts: TokenCounts) -> PricedCost:
        linear = self._override_prices[entry.source]
        return self._result(linear.cost(counts), entry.source, found, partial_detail(linear.unpriced, counts))

    def _catalog_cost(self, found: Resolution, timestamp: datetime, counts: TokenCounts) -> tuple[Decimal, frozenset[str]]:
        model_price = found.model.get_prices(timestamp)
        shape = self._shapes.get(id(model_price))
        if shape is None:
            shape = _PriceShape(model_price, tier_thresholds(model_price), unpriced_components(model_price), {})
            self._shapes[id(model_price)] = shape
        region = tier_region(shape.thresholds, counts.input)
        if region in shape.fits:
            fitted = shape.fits[region]
        else:
            fitted = shape.fits[region] = fit_linear_price(model_price, shape.thresholds, region)
        if fitted is not None:
            return fitted.cost(counts), shape.unpriced
        calculation = found.model.calc_price(counts.as_catalog_usage(), found.provider, genai_request_timestamp=timestamp)
        return calculation.total_price, shape.unpriced


_DEFAULT_PRICER: CatalogPricer | None = None


def configure_default_pricer(pricer: CatalogPricer | None) -> None:
    """Make `pricer` the one `price_event` uses in this process (None: catalog only, lazily)."""
    global _DEFAULT_PRICER
    _DEFAULT_PRICER = pricer


def default_pricer() -> CatalogPricer:
    """The process-wide pricer: what a worker configured at start, or the catalog alone."""
    global _DEFAULT_PRICER
    if _DEFAULT_PRICER is None:
        _DEFAULT_PRICER = CatalogPricer()
    return _DEFAULT_PRICER


def price_event(event: UsageTrackingEvent) -> PricedCost:
    """The cost of one event with the process-wide pricer."""
    return default_pricer().price(event)


def catalog_provider_id(provider: str) -> str:
    """A provider name as events carry it, normalized (`OpenAI` -> `openai`, `azure_openai` -> `azure`)."""
    return normalize_provider(provider)
