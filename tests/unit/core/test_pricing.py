"""`price_event`: catalog prices at the event's timestamp, Decimal, unknown models visible.

Expected costs are worked out by hand from the prices in the bundled genai-prices
catalog (per million tokens): gpt-4o input $2.50, cached input $1.25, output $10;
o3 input $10 / output $40 before 2025-06-10 and $2 / $8 from then on.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price

from stream_app.core.pricing import CATALOG_SOURCE, CatalogPricer, PriceStatus, catalog_provider_id, price_event
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


# --- tiers, time-of-day prices, and agreement with the catalog's own calculation ------------
#
# gemini-2.5-pro: input $1.25/M, cached $0.125/M, output $10/M while input_tokens <= 200,000;
# above that *all* tokens cost $2.50 / $0.25 / $15 per M.


def gemini_pro(input_tokens: int, output_tokens: int, cache_read_tokens: int = 0):
    return make_event(
        provider="google", model="gemini-2.5-pro", timestamp=WHEN,
        usage={"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_tokens": cache_read_tokens},
    )


def test_tier_boundary_belongs_to_the_lower_tier():
    # 200,000 * 1.25/M + 1,000 * 10/M = 0.25 + 0.01
    assert price_event(gemini_pro(200_000, 1_000)).cost_usd == Decimal("0.26")


def test_one_token_past_the_tier_reprices_every_token():
    # 200,001 * 2.5/M + 1,000 * 15/M = 0.5000025 + 0.015
    assert price_event(gemini_pro(200_001, 1_000)).cost_usd == Decimal("0.5150025")


def test_cached_tokens_in_the_upper_tier():
    # 100,000 uncached * 2.5/M + 100,001 cached * 0.25/M = 0.25 + 0.02500025
    assert price_event(gemini_pro(200_001, 0, cache_read_tokens=100_001)).cost_usd == Decimal("0.27500025")


def test_tiers_of_one_model_do_not_leak_into_each_other():
    # Alternate tiers with one pricer: a cached fit must stay with its own tier.
    pricer = CatalogPricer()
    costs = [pricer.price(gemini_pro(n, 1_000)).cost_usd for n in (200_001, 200_000, 10, 5_000_000, 200_000)]

    # 10 * 1.25/M + 0.01 = 0.0100125;  5,000,000 * 2.5/M + 1,000 * 15/M = 12.5 + 0.015
    assert costs == [Decimal("0.5150025"), Decimal("0.26"), Decimal("0.0100125"), Decimal("12.515"), Decimal("0.26")]


@pytest.mark.parametrize(
    ("hour", "expected"),
    [(12, Decimal("0.27")), (20, Decimal("0.135")), (0, Decimal("0.135"))],
    ids=["peak-12:00", "off-peak-20:00", "off-peak-00:00"],
)
def test_time_of_day_price_follows_the_event_timestamp(hour, expected):
    # deepseek-chat input is $0.27/M from 00:30 to 16:30 UTC and $0.135/M otherwise.
    event = make_event(
        provider="deepseek", model="deepseek-chat", timestamp=datetime(2026, 11, 22, hour, 0, tzinfo=UTC),
        usage={"input_tokens": 1_000_000, "output_tokens": 0, "cache_read_tokens": 0},
    )

    assert price_event(event).cost_usd == expected


_ORACLE_MODELS = [
    ("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "o3"), ("openai", "gpt-5-nano"),
    ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-haiku-4-5"), ("anthropic", "claude-opus-4-6"),
    ("google", "gemini-2.5-pro"), ("google", "gemini-2.5-flash"), ("google", "gemini-1.5-flash-8b"),
    ("deepseek", "deepseek-chat"), ("deepseek", "deepseek-reasoner"), ("mistral", "mistral-small-latest"),
]


def test_every_cost_equals_the_catalogs_own_calculation():
    """Seeded random usages, tier edges and times against `genai_prices.calc_price`."""
    rng = random.Random(20261122)
    pricer = CatalogPricer()
    edges = [0, 1, 127_999, 128_000, 128_001, 199_999, 200_000, 200_001, 272_000, 272_001, 1_000_000]
    for _ in range(1_500):
        provider, model = rng.choice(_ORACLE_MODELS)
        inp = rng.choice(edges + [rng.randrange(0, 3_000_000)])
        cache_read = rng.randrange(0, inp + 1) if inp and rng.random() < 0.5 else 0
        cache_write = rng.randrange(0, inp - cache_read + 1) if inp - cache_read and rng.random() < 0.3 else 0
        out = rng.choice([0, 1, rng.randrange(0, 200_000)])
        when = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 700 * 86_400))
        event = make_event(
            provider=provider, model=model, timestamp=when,
            usage={"input_tokens": inp, "output_tokens": out, "cache_read_tokens": cache_read, "cache_write_tokens": cache_write},
        )

        expected = calc_price(
            CatalogUsage(input_tokens=inp, output_tokens=out, cache_read_tokens=cache_read, cache_write_tokens=cache_write),
            model_ref=model, provider_id=provider, genai_request_timestamp=when,
        ).total_price
        priced = pricer.price(event)

        # Cache writes on a model without a cache-write price are billed at the input price,
        # as the catalog does, and the row says so with status "partial".
        assert priced.status in ("priced", "partial")
        assert priced.cost_usd == expected, (provider, model, when, inp, cache_read, cache_write, out)
