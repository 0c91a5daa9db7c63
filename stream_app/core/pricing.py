"""Price one event with the genai-prices catalog, at the event's own timestamp.

Pure and offline: the catalog is the data bundled with the installed genai-prices
release, never fetched at run time. An unknown model is priced at 0 with status
`unpriced`, so it is visible on every report instead of silently free.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage as CatalogUsage
from genai_prices import __version__ as CATALOG_VERSION
from genai_prices import calc_price

from schemas import UsageTrackingEvent

ZERO = Decimal(0)


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


CATALOG_SOURCE = f"genai-prices {CATALOG_VERSION}"


def price_event(event: UsageTrackingEvent) -> PricedCost:
    """The cost of one event, by the catalog price in force at `event.timestamp`."""
    usage = event.usage
    try:
        calculation = calc_price(
            CatalogUsage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            ),
            model_ref=event.model,
            provider_id=catalog_provider_id(event.provider),
            genai_request_timestamp=event.timestamp,
        )
    except LookupError as exc:
        return PricedCost(ZERO, PriceStatus.UNPRICED, CATALOG_SOURCE, "", "", str(exc))
    return PricedCost(
        calculation.total_price,
        PriceStatus.PRICED,
        CATALOG_SOURCE,
        calculation.provider.id,
        calculation.model.id,
    )


@lru_cache(maxsize=256)
def catalog_provider_id(provider: str) -> str:
    """The catalog's id for a provider name as events carry it (`OpenAI` -> `openai`)."""
    return provider.strip().lower()
