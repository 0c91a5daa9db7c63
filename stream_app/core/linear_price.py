"""Cost arithmetic: a price as an exact linear function of an event's token counts.

genai-prices' `calc_price` costs ~100 µs an event, which would cap a worker near 10k
events/s. Within one price (a model's price in force at a time) and one price tier, its
result is an exact linear function of the token counts, so `fit_linear_price` measures
that function once per (price, tier) with the catalog's own calculation, checks it
reproduces the catalog exactly, and the pricer then prices each event with a few Decimal
products. Anything that does not fit that shape exactly is priced by the catalog directly.

An `[[override]]` is put in the same shape (`override_linear_price`), so both kinds of
price bill cache and reasoning tokens the same way and say the same when a part of an
event has no price of its own (`partial_detail`).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from genai_prices import Usage as CatalogUsage
from genai_prices.types import TieredPrices

from schemas import UsageTrackingEvent
from stream_app.core.price_overrides import PriceOverride

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)


class TokenCounts(msgspec.Struct, frozen=True, gc=False):
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


def token_counts(event: UsageTrackingEvent) -> TokenCounts:
    u = event.usage
    return TokenCounts(u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens, u.reasoning_tokens)


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
