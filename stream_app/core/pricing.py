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

Speed: genai-prices' `calc_price` costs ~100 µs an event, which would cap a worker near
10k events/s. Within one price (a model's price in force at a time) and one price tier,
its result is an exact linear function of the token counts, so `CatalogPricer` measures
that function once per (price, tier) with the catalog's own calculation, checks it
reproduces the catalog exactly, and then prices each event with a few Decimal products.
Anything that does not fit that shape exactly is priced by the catalog directly.
"""

from __future__ import annotations

import difflib
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from genai_prices import Usage as CatalogUsage
from genai_prices import __version__ as CATALOG_VERSION
from genai_prices.data_snapshot import find_provider_by_id, get_snapshot
from genai_prices.types import TieredPrices

from schemas import UsageTrackingEvent
from stream_app.core.model_names import normalize_provider, rewritten_names
from stream_app.core.price_overrides import (
    OverrideSchedule,
    PriceOverride,
    PriceOverrides,
    index_overrides,
    load_price_overrides,
)
from stream_app.errors import ConfigurationError

if TYPE_CHECKING:
    from stream_app.settings import PipelineSettings

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)
CATALOG_SOURCE = f"genai-prices {CATALOG_VERSION}"
PROVIDER_COST_SOURCE = "provider_cost"
# ClickHouse stores cost as Decimal(38, 18): costs are rounded (half-even) to this on write.
STORED_COST_QUANTUM = Decimal("1e-18")
_WIDE = Context(prec=80)
# How many (provider, model) resolutions to keep before starting over (bounded memory).
_MAX_RESOLUTIONS = 100_000


class PriceStatus:
    PRICED = "priced"
    PARTIAL = "partial"
    PROVIDER_REPORTED = "provider_reported"
    UNPRICED = "unpriced"
    ALL = (PRICED, PARTIAL, PROVIDER_REPORTED, UNPRICED)


@dataclass(frozen=True, slots=True)
class PricedCost:
    """What an event costs and how that was decided."""

    cost_usd: Decimal
    status: str
    source: str  # which price: "genai-prices 0.2.3", "override:prices.toml#acme-gpt-4o" or "provider_cost"
    catalog_provider: str  # provider id the catalog matched ("" when none)
    catalog_model: str  # model id the catalog matched ("" when none)
    detail: str = ""  # how the name was matched, why a price is missing or partial


class TokenCounts(NamedTuple):
    """Token counts as the event reports them: input includes cache, output includes reasoning."""

    input: int
    cache_read: int
    cache_write: int
    output: int
    reasoning: int = 0

    def as_catalog_usage(self) -> CatalogUsage:
        return CatalogUsage(
            input_tokens=self.input,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            output_tokens=self.output,
            output_reasoning_tokens=self.reasoning,
        )


# The parts of a price an event's tokens can fall into, and the catalog's key for each.
COMPONENT_PRICE_KEYS = {
    "input": "input_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
    "output": "output_mtok",
}


@dataclass(frozen=True, slots=True)
class LinearPrice:
    """cost = base + Σ per_x · x over the token counts (input and output are totals).

    `unpriced` names the components the price has no price of its own for; tokens there
    are billed as the catalog bills them (cache at the input price; input or output not
    at all), and the event's status is `partial`.
    """

    base: Decimal
    per_input: Decimal
    per_cache_read: Decimal
    per_cache_write: Decimal
    per_output: Decimal
    per_reasoning: Decimal = ZERO
    unpriced: frozenset[str] = frozenset()

    def cost(self, t: TokenCounts) -> Decimal:
        return (
            self.base
            + self.per_input * t.input
            + self.per_cache_read * t.cache_read
            + self.per_cache_write * t.cache_write
            + self.per_output * t.output
            + self.per_reasoning * t.reasoning
        )


def token_counts(event: UsageTrackingEvent) -> TokenCounts:
    u = event.usage
    return TokenCounts(u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens, u.reasoning_tokens)


def stored_cost(cost: Decimal) -> Decimal:
    """The cost as ClickHouse's Decimal(38, 18) holds it, rounded half-even (not truncated)."""
    return cost.quantize(STORED_COST_QUANTUM, rounding=ROUND_HALF_EVEN, context=_WIDE)


def unpriced_components(model_price: Any) -> frozenset[str]:
    """Components of our token counts the price has no price of its own for."""
    return frozenset(c for c, key in COMPONENT_PRICE_KEYS.items() if getattr(model_price, key, None) is None)


def partial_detail(unpriced: frozenset[str], t: TokenCounts) -> str:
    """Why an event's cost is partial, or "" when every token it has is priced."""
    if not unpriced:
        return ""
    notes = []
    if "input" in unpriced and t.input - t.cache_read - t.cache_write > 0:
        notes.append("no input price: uncached input tokens not billed")
    fallback = "not billed" if "input" in unpriced else "billed at the input price"
    if "cache_read" in unpriced and t.cache_read > 0:
        notes.append(f"no cache_read price: cache-read tokens {fallback}")
    if "cache_write" in unpriced and t.cache_write > 0:
        notes.append(f"no cache_write price: cache-write tokens {fallback}")
    if "output" in unpriced and t.output > 0:
        notes.append("no output price: output tokens not billed")
    return "; ".join(notes)


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


def _power_of_ten_at_most(n: int) -> int:
    width = 1
    while width * 10 <= n:
        width *= 10
    return width


def fit_linear_price(model_price: Any, thresholds: tuple[int, ...], region: int) -> LinearPrice | None:
    """Measure the linear price of one tier region with the catalog's own calculation.

    Slopes are measured over widths that are powers of ten, so every division is exact.
    Returns None when the region is too narrow, when a per-token price has more than 18
    decimal places (some catalog prices are float artifacts like 0.08333333333333334;
    then Decimal sums could round differently from the catalog's), or when the fit does
    not reproduce the catalog exactly at the check points. The caller then uses the
    catalog directly.
    """
    low = 0 if region == 0 else thresholds[region - 1] + 1
    high = thresholds[region] if region < len(thresholds) else low + 10_000_000
    if high - low < 1:
        return None
    w = _power_of_ten_at_most(high - low)
    a, b = low, low + w

    def cost(t: TokenCounts) -> Decimal:
        return model_price.calc_price(t.as_catalog_usage())["total_price"]

    try:
        at_a = cost(TokenCounts(a, 0, 0, 0))
        at_b = cost(TokenCounts(b, 0, 0, 0))
        per_input = (at_b - at_a) / w
        base = at_a - per_input * a
        per_cache_read = (cost(TokenCounts(b, w, 0, 0)) - at_b) / w
        per_cache_write = (cost(TokenCounts(b, 0, w, 0)) - at_b) / w
        with_output = cost(TokenCounts(b, 0, 0, 1_000_000))
        per_output = (with_output - at_b) / MILLION
        per_reasoning = (cost(TokenCounts(b, 0, 0, 1_000_000, 1_000_000)) - with_output) / MILLION
    except Exception:  # the catalog refuses some combination: not a simple linear price
        return None
    coefficients = (base, per_input, per_cache_read, per_cache_write, per_output, per_reasoning)
    if any(c.as_tuple().exponent < -18 for c in coefficients):  # type: ignore[operator]
        return None
    fitted = LinearPrice(*coefficients, unpriced=unpriced_components(model_price))
    mid = (low + high) // 2 or high
    checks = (
        TokenCounts(mid, mid // 3, mid // 5, 7_919, 3_001),
        TokenCounts(high, high // 2, high // 2, 123_457, 123_457),
        TokenCounts(low, 0, 0, 1) if low else TokenCounts(0, 0, 0, 3, 1),
    )
    try:
        if any(fitted.cost(t) != cost(t) for t in checks):
            return None
    except Exception:
        return None
    return fitted


def override_linear_price(entry: PriceOverride) -> LinearPrice:
    """An override's prices in the same shape (and with the same meaning) as a catalog price."""
    per_input = entry.input_mtok / MILLION
    return LinearPrice(
        base=ZERO,
        per_input=per_input,
        per_cache_read=ZERO if entry.cache_read_mtok is None else entry.cache_read_mtok / MILLION - per_input,
        per_cache_write=ZERO if entry.cache_write_mtok is None else entry.cache_write_mtok / MILLION - per_input,
        per_output=entry.output_mtok / MILLION,
        unpriced=frozenset(
            name
            for name, price in (("cache_read", entry.cache_read_mtok), ("cache_write", entry.cache_write_mtok))
            if price is None
        ),
    )


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a (provider, model) pair as events carry it means to the catalog and the price file."""

    provider_id: str  # the catalog's provider id, or the normalized name when it has none
    provider: Any | None  # catalog Provider the model was found under
    model: Any | None  # catalog ModelInfo, None when the catalog has no price
    note: str  # how the name was matched ("" when as it arrived, or when it was not)
    miss: str  # why the catalog has no price ("" when it has one)
    schedules: tuple[OverrideSchedule, ...]  # override histories that may apply, most specific first


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
        self._snapshot = get_snapshot()
        self.overrides = overrides or PriceOverrides()
        self._resolutions: dict[tuple[str, str], Resolution] = {}
        self._shapes: dict[int, _PriceShape] = {}
        self._override_prices = {entry.source: override_linear_price(entry) for entry in self.overrides.overrides}
        self._override_index = index_overrides(self.overrides.overrides, self.canonical_provider)
        self._aliases = self._check_aliases()

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
        found = self._resolutions.get((provider, model))
        if found is None:
            found = self._remember(provider, model)
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
        return self._resolutions.get((provider, model)) or self._remember(provider, model)

    def canonical_provider(self, name: str) -> str:
        """The catalog's id for a provider name, or the normalized name if the catalog has none."""
        normalized = normalize_provider(name)
        found = find_provider_by_id(self._snapshot.providers, normalized)
        return found.id if found is not None else normalized

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

    def _remember(self, provider: str, model: str) -> Resolution:
        if len(self._resolutions) >= _MAX_RESOLUTIONS:
            self._resolutions.clear()
        found = self._resolve(provider, model)
        self._resolutions[(provider, model)] = found
        return found

    def _resolve(self, provider: str, model: str) -> Resolution:
        normalized = normalize_provider(provider)
        catalog_provider = find_provider_by_id(self._snapshot.providers, normalized)
        provider_id = catalog_provider.id if catalog_provider is not None else normalized
        name = model.strip().lower()
        names = [name]
        match: tuple[Any, Any] | None = None
        note = miss = ""
        alias = self._aliases.get((provider_id, name))
        if alias is not None:
            match, note = alias
        else:
            match = self._lookup(normalized, name)
            if match is None:
                for rules, candidate in rewritten_names(provider_id, name, self._same_provider(catalog_provider)):
                    names.append(candidate)
                    match = self._lookup(normalized, candidate)
                    if match is not None:
                        note = f"matched as {candidate!r} by name rule {rules}"
                        break
            if match is None:
                miss = (
                    f"the catalog ({CATALOG_SOURCE}) has no model {model!r} for provider {provider_id!r}"
                    if catalog_provider is not None or normalized == "litellm"
                    else f"the catalog ({CATALOG_SOURCE}) has no provider {provider!r}"
                )
        if match is not None:
            names.append(match[1].id.lower())
        schedules: list[OverrideSchedule] = []
        for candidate in names:
            schedule = self._override_index.get((provider_id, candidate))
            if schedule is not None and all(schedule is not s for s in schedules):
                schedules.append(schedule)
        if match is None:
            return Resolution(provider_id, None, None, "", miss, tuple(schedules))
        return Resolution(provider_id, match[0], match[1], note, "", tuple(schedules))

    def _lookup(self, provider: str, model_ref: str) -> tuple[Any, Any] | None:
        try:
            return self._snapshot.find_provider_model(model_ref, None, provider, None)
        except LookupError:
            return None

    def _same_provider(self, catalog_provider: Any | None):  # noqa: ANN202 - a small predicate
        def same(prefix: str) -> bool:
            if catalog_provider is None:
                return False
            return find_provider_by_id(self._snapshot.providers, normalize_provider(prefix)) is catalog_provider

        return same

    def _check_aliases(self) -> dict[tuple[str, str], tuple[tuple[Any, Any], str]]:
        """Every alias must name a model the catalog has; checked once, at start."""
        checked: dict[tuple[str, str], tuple[tuple[Any, Any], str]] = {}
        problems = []
        for alias in self.overrides.aliases:
            match = self._lookup(alias.catalog_provider, alias.catalog_model)
            if match is None:
                problems.append(
                    f"{alias.where}: the catalog ({CATALOG_SOURCE}) has no model {alias.catalog_model!r} for "
                    f"provider {alias.catalog_provider!r}{self._suggestion(alias.catalog_provider, alias.catalog_model)}; "
                    "fix catalog_model (or catalog_provider), or price the name with an [[override]] instead"
                )
                continue
            key = (self.canonical_provider(alias.provider), alias.model)
            checked[key] = (match, f"alias {alias.provider}/{alias.model} -> {match[0].id}/{match[1].id} ({alias.where})")
        if problems:
            raise ConfigurationError(
                f"price file {self.overrides.origin} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
            )
        return checked

    def _suggestion(self, provider: str, model: str) -> str:
        found = find_provider_by_id(self._snapshot.providers, provider)
        if found is None:
            return " (no such provider in the catalog)"
        # Azure, Google and others also price models of the providers they fall back to.
        providers = [found, *(p for p in self._snapshot.providers if p.id in (found.fallback_model_providers or ()))]
        close = difflib.get_close_matches(model.lower(), sorted({m.id.lower() for p in providers for m in p.models}), n=3)
        return f" (close: {', '.join(close)})" if close else ""


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
