"""Price one event with the genai-prices catalog, at the event's own timestamp.

Pure and offline: the catalog is the data bundled with the installed genai-prices
release, never fetched at run time. An unknown model is priced at 0 with status
`unpriced`, so it is visible on every report instead of silently free.

Speed: genai-prices' `calc_price` costs ~100 µs an event, which would cap a worker near
10k events/s. Within one price (a model's price in force at a time) and one price tier,
its result is an exact linear function of the four token counts, so `CatalogPricer`
measures that function once per (price, tier) with `calc_price` itself, checks it
reproduces `calc_price` exactly, and then prices each event with four Decimal products.
Anything that does not fit that shape is priced by `calc_price` directly.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from genai_prices import Usage as CatalogUsage
from genai_prices import __version__ as CATALOG_VERSION
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import TieredPrices

from schemas import UsageTrackingEvent

ZERO = Decimal(0)
CATALOG_SOURCE = f"genai-prices {CATALOG_VERSION}"


class PriceStatus:
    PRICED = "priced"
    UNPRICED = "unpriced"


@dataclass(frozen=True, slots=True)
class PricedCost:
    """What an event costs and how that was decided."""

    cost_usd: Decimal
    status: str
    source: str  # which price: the catalog release, e.g. "genai-prices 0.2.3"
    catalog_provider: str  # provider id the catalog matched ("" when unpriced)
    catalog_model: str  # model id the catalog matched ("" when unpriced)
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TokenCounts:
    input: int
    cache_read: int
    cache_write: int
    output: int

    def as_catalog_usage(self) -> CatalogUsage:
        return CatalogUsage(
            input_tokens=self.input,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            output_tokens=self.output,
        )


@dataclass(frozen=True, slots=True)
class LinearPrice:
    """cost = base + per_input·input + per_cache_read·cache_read + per_cache_write·cache_write + per_output·output."""

    base: Decimal
    per_input: Decimal
    per_cache_read: Decimal
    per_cache_write: Decimal
    per_output: Decimal

    def cost(self, t: TokenCounts) -> Decimal:
        return (
            self.base
            + self.per_input * t.input
            + self.per_cache_read * t.cache_read
            + self.per_cache_write * t.cache_write
            + self.per_output * t.output
        )


def token_counts(event: UsageTrackingEvent) -> TokenCounts:
    u = event.usage
    # Reasoning tokens are billed as output: they are already inside output_tokens.
    return TokenCounts(u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens)


def tier_thresholds(model_price: Any) -> tuple[int, ...]:
    """The input-token counts above which some price of `model_price` changes tier."""
    starts = {
        tier.start
        for value in vars(model_price).values()
        if isinstance(value, TieredPrices)
        for tier in value.tiers
    }
    return tuple(sorted(starts))


def tier_region(thresholds: tuple[int, ...], input_tokens: int) -> int:
    """How many thresholds `input_tokens` exceeds (a tier applies when input > its start)."""
    return bisect_left(thresholds, input_tokens)


def fit_linear_price(model_price: Any, thresholds: tuple[int, ...], region: int) -> LinearPrice | None:
    """Measure the linear price of one tier region with the catalog's own calculation.

    Returns None when the region is too narrow to measure or the fit does not reproduce
    the catalog exactly at the probe points (then the caller uses the catalog directly).
    """
    low = 0 if region == 0 else thresholds[region - 1] + 1
    high = thresholds[region] if region < len(thresholds) else low + 1_000_000
    if high - low < 1 or high == 0:
        return None

    def cost(t: TokenCounts) -> Decimal:
        return model_price.calc_price(t.as_catalog_usage())["total_price"]

    try:
        at_high = cost(TokenCounts(high, 0, 0, 0))
        at_low = cost(TokenCounts(low, 0, 0, 0))
        per_input = (at_high - at_low) / (high - low)
        base = at_high - per_input * high
        per_cache_read = (cost(TokenCounts(high, high, 0, 0)) - at_high) / high
        per_cache_write = (cost(TokenCounts(high, 0, high, 0)) - at_high) / high
        per_output = (cost(TokenCounts(high, 0, 0, 1_000_000)) - at_high) / 1_000_000
    except Exception:  # the catalog refuses some combination: not a simple linear price
        return None
    fitted = LinearPrice(base, per_input, per_cache_read, per_cache_write, per_output)
    mid = (low + high) // 2 or high
    checks = (
        TokenCounts(mid, mid // 3, mid // 5, 7_919),
        TokenCounts(high, high // 2, high // 2, 123_457),
        TokenCounts(low, 0, 0, 1) if low else TokenCounts(0, 0, 0, 3),
    )
    try:
        if any(fitted.cost(t) != cost(t) for t in checks):
            return None
    except Exception:
        return None
    return fitted


class CatalogPricer:
    """Prices events from the bundled catalog; caches model lookups and fitted prices."""

    def __init__(self) -> None:
        self._snapshot = get_snapshot()
        self._models: dict[tuple[str, str], tuple[Any, Any] | LookupError] = {}
        self._fits: dict[tuple[int, int], tuple[Any, LinearPrice | None]] = {}
        self._thresholds: dict[int, tuple[Any, tuple[int, ...]]] = {}

    def __call__(self, event: UsageTrackingEvent) -> PricedCost:
        return self.price(event)

    def price(self, event: UsageTrackingEvent) -> PricedCost:
        """The cost of one event, by the catalog price in force at `event.timestamp`."""
        found = self._find(catalog_provider_id(event.provider), event.model)
        if isinstance(found, LookupError):
            return PricedCost(ZERO, PriceStatus.UNPRICED, CATALOG_SOURCE, "", "", str(found))
        provider, model = found
        counts = token_counts(event)
        try:
            cost = self._cost(model, provider, event.timestamp, counts)
        except Exception as exc:  # a catalog entry that cannot price this usage: visible, not $0
            return PricedCost(ZERO, PriceStatus.UNPRICED, CATALOG_SOURCE, provider.id, model.id, f"catalog error: {exc}")
        return PricedCost(cost, PriceStatus.PRICED, CATALOG_SOURCE, provider.id, model.id)

    def _find(self, provider_id: str, model_ref: str) -> tuple[Any, Any] | LookupError:
        key = (provider_id, model_ref)
        found = self._models.get(key)
        if found is None:
            try:
                found = self._snapshot.find_provider_model(model_ref, None, provider_id, None)
            except LookupError as exc:
                found = exc
            self._models[key] = found
        return found

    def _cost(self, model: Any, provider: Any, timestamp: datetime, counts: TokenCounts) -> Decimal:
        model_price = model.get_prices(timestamp)
        thresholds = self._thresholds_of(model_price)
        region = tier_region(thresholds, counts.input)
        key = (id(model_price), region)
        cached = self._fits.get(key)
        if cached is None:
            # Keep a reference to the price object so its id() cannot be reused.
            cached = (model_price, fit_linear_price(model_price, thresholds, region))
            self._fits[key] = cached
        fitted = cached[1]
        if fitted is not None:
            return fitted.cost(counts)
        return model.calc_price(counts.as_catalog_usage(), provider, genai_request_timestamp=timestamp).total_price

    def _thresholds_of(self, model_price: Any) -> tuple[int, ...]:
        entry = self._thresholds.get(id(model_price))
        if entry is None:
            entry = (model_price, tier_thresholds(model_price))
            self._thresholds[id(model_price)] = entry
        return entry[1]


_DEFAULT_PRICER: CatalogPricer | None = None


def price_event(event: UsageTrackingEvent) -> PricedCost:
    """The cost of one event with the process-wide catalog pricer."""
    global _DEFAULT_PRICER
    if _DEFAULT_PRICER is None:
        _DEFAULT_PRICER = CatalogPricer()
    return _DEFAULT_PRICER.price(event)


def catalog_provider_id(provider: str) -> str:
    """The catalog's id for a provider name as events carry it (`OpenAI` -> `openai`)."""
    return provider.strip().lower()
