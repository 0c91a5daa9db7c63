"""`price_event`: catalog prices at the event's timestamp, Decimal, unknown models visible.

Expected costs are worked out by hand from the prices in the bundled genai-prices
catalog (per million tokens): gpt-4o input $2.50, cached input $1.25, output $10;
o3 input $10 / output $40 before 2025-06-10 and $2 / $8 from then on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price

from stream_app.core.pricing import CATALOG_SOURCE, PriceStatus, catalog_provider_id, price_event
from tests.factories import make_event

WHEN = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def gpt4o(**usage):
    return make_event(provider="openai", model="gpt-4o", timestamp=WHEN, usage=usage)


def test_gpt4o_cost_by_hand():
    # 800 uncached input * 2.5/M + 200 cached * 1.25/M + 100 output * 10/M
    #   = 0.002 + 0.00025 + 0.001
    event = gpt4o(input_tokens=1000, cache_read_tokens=200, output_tokens=100)

    priced = price_event(event)

    assert priced.cost_usd == Decimal("0.00325")
    assert isinstance(priced.cost_usd, Decimal)
    assert priced.status == PriceStatus.PRICED == "priced"
    assert (priced.catalog_provider, priced.catalog_model) == ("openai", "gpt-4o")
    assert priced.detail == ""


def test_gpt4o_cost_matches_the_catalog_library():
    event = gpt4o(input_tokens=1000, cache_read_tokens=200, output_tokens=100)

    expected = calc_price(
        CatalogUsage(input_tokens=1000, cache_read_tokens=200, output_tokens=100),
        model_ref="gpt-4o",
        provider_id="openai",
        genai_request_timestamp=WHEN,
    ).total_price

    assert price_event(event).cost_usd == expected


def test_uncached_call_by_hand():
    # 1,000,000 input * 2.5/M + 1,000,000 output * 10/M
    event = gpt4o(input_tokens=1_000_000, cache_read_tokens=0, output_tokens=1_000_000)

    assert price_event(event).cost_usd == Decimal("12.5")


def test_reasoning_tokens_are_billed_as_part_of_output_not_on_top():
    # output_tokens already include the 60 reasoning tokens: 100 * 10/M, not 160 * 10/M.
    plain = gpt4o(input_tokens=0, cache_read_tokens=0, output_tokens=100, reasoning_tokens=0)
    reasoning = gpt4o(input_tokens=0, cache_read_tokens=0, output_tokens=100, reasoning_tokens=60)

    assert price_event(plain).cost_usd == Decimal("0.001")
    assert price_event(reasoning).cost_usd == Decimal("0.001")


def test_cached_input_is_cheaper_than_uncached():
    # 1000 cached * 1.25/M versus 1000 uncached * 2.5/M
    cached = gpt4o(input_tokens=1000, cache_read_tokens=1000, output_tokens=0)
    uncached = gpt4o(input_tokens=1000, cache_read_tokens=0, output_tokens=0)

    assert price_event(cached).cost_usd == Decimal("0.00125")
    assert price_event(uncached).cost_usd == Decimal("0.0025")


def test_one_token_is_a_sub_micro_dollar_amount_kept_exact():
    # gpt-5-nano input is $0.05/M: one token costs 5E-8 dollars.
    event = make_event(provider="openai", model="gpt-5-nano", timestamp=WHEN, usage={"input_tokens": 1, "output_tokens": 0, "cache_read_tokens": 0})

    assert price_event(event).cost_usd == Decimal("0.00000005")


def test_zero_tokens_cost_zero():
    assert price_event(gpt4o(input_tokens=0, cache_read_tokens=0, output_tokens=0)).cost_usd == 0


def test_price_in_force_at_the_event_timestamp_is_used():
    # o3 was repriced on 2025-06-10: 1000 in + 1000 out
    #   before: 1000 * 10/M + 1000 * 40/M = 0.05     after: 1000 * 2/M + 1000 * 8/M = 0.01
    usage = {"input_tokens": 1000, "output_tokens": 1000, "cache_read_tokens": 0}
    before = make_event(provider="openai", model="o3", timestamp=datetime(2025, 6, 9, 23, 59, tzinfo=UTC), usage=usage)
    after = make_event(provider="openai", model="o3", timestamp=datetime(2025, 6, 10, 0, 1, tzinfo=UTC), usage=usage)

    assert price_event(before).cost_usd == Decimal("0.05")
    assert price_event(after).cost_usd == Decimal("0.01")


def test_provider_name_is_matched_case_insensitively():
    event = make_event(provider=" OpenAI ", model="gpt-4o", timestamp=WHEN, usage={"input_tokens": 1000, "cache_read_tokens": 0, "output_tokens": 0})

    priced = price_event(event)

    assert priced.cost_usd == Decimal("0.0025")
    assert priced.catalog_provider == "openai"


@pytest.mark.parametrize(("given", "catalog"), [("OpenAI", "openai"), ("anthropic", "anthropic"), ("  Google ", "google")])
def test_catalog_provider_id(given, catalog):
    assert catalog_provider_id(given) == catalog


def test_unknown_model_is_unpriced_and_visible():
    event = make_event(provider="openai", model="gpt-nonexistent-9000", timestamp=WHEN)

    priced = price_event(event)

    assert priced.status == PriceStatus.UNPRICED == "unpriced"
    assert priced.cost_usd == Decimal(0)
    assert isinstance(priced.cost_usd, Decimal)
    assert "gpt-nonexistent-9000" in priced.detail
    assert (priced.catalog_provider, priced.catalog_model) == ("", "")
    assert priced.source == CATALOG_SOURCE


def test_unknown_provider_is_unpriced():
    priced = price_event(make_event(provider="acme-llm-cloud", model="gpt-4o", timestamp=WHEN))

    assert priced.status == "unpriced"
    assert priced.cost_usd == 0
    assert priced.detail


def test_source_names_the_catalog_release():
    priced = price_event(gpt4o(input_tokens=1, cache_read_tokens=0, output_tokens=1))

    assert priced.source == f"genai-prices {genai_prices.__version__}"
