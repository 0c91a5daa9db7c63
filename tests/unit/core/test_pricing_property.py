"""Property: whatever the model, usage and time, the billed cost is genai-prices' own `calc_price`.

Over every model of the bundled catalog that its own name finds, with usages that respect
SPEC §1 (cache within input, reasoning within output), token counts at and around every
tier threshold of the model, and times across the catalog's price changes. One pricer is
shared by all examples, so the fitted prices and caches of earlier examples are in play
for later ones, as they are in a long-running worker. Then the same for batches of
events through the row builder, with overrides in force for some of them.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice, TieredPrices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.core.counting import copies_of
from stream_app.core.decode import DecodedEvent, MessageOrigin
from stream_app.core.price_overrides import parse_price_overrides
from stream_app.core.pricing import CatalogPricer, TokenCounts, stored_cost
from stream_app.core.rows import EVENT_COLUMNS, build_chunk_rows
from tests.factories import make_event

COMPONENT_KEYS = {"input": "input_mtok", "cache_read": "cache_read_mtok", "cache_write": "cache_write_mtok", "output": "output_mtok"}


def _self_found_models() -> list[tuple[str, str, tuple[int, ...]]]:
    """(provider, model id, tier thresholds) for each catalog model its own id finds."""
    snapshot = get_snapshot()
    found = []
    for provider in snapshot.providers:
        for model in provider.models:
            try:
                _, matched = snapshot.find_provider_model(model.id, None, provider.id, None)
            except LookupError:
                continue
            if matched is not model:
                continue
            prices = [model.prices] if isinstance(model.prices, ModelPrice) else [c.prices for c in model.prices]
            starts = {
                tier.start
                for price in prices
                for value in vars(price).values()
                if isinstance(value, TieredPrices)
                for tier in value.tiers
            }
            found.append((provider.id, model.id, tuple(sorted(starts))))
    return found


CATALOG_MODELS = _self_found_models()
PRICER = CatalogPricer()


def test_the_property_covers_most_of_the_catalog():
    assert len(CATALOG_MODELS) > 1_500
    assert any(thresholds for _, _, thresholds in CATALOG_MODELS)


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, str, TokenCounts, datetime]:
    provider, model, thresholds = draw(st.sampled_from(CATALOG_MODELS))
    edges = [t + d for t in thresholds for d in (-1, 0, 1)] or [0]
    input_tokens = draw(st.one_of(st.sampled_from(edges), st.integers(0, 3_000_000), st.integers(0, 10)))
    cache_read = draw(st.one_of(st.just(0), st.integers(0, input_tokens)))
    cache_write = draw(st.one_of(st.just(0), st.integers(0, input_tokens - cache_read)))
    output = draw(st.one_of(st.just(0), st.integers(0, 2_000_000)))
    reasoning = draw(st.one_of(st.just(0), st.integers(0, output)))
    at = draw(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)))
    return provider, model, TokenCounts(input_tokens, cache_read, cache_write, output, reasoning), at


def catalog_answer(provider: str, model: str, counts: TokenCounts, at: datetime) -> Decimal | None:
    try:
        return calc_price(
            CatalogUsage(
                input_tokens=counts.input,
                cache_read_tokens=counts.cache_read,
                cache_write_tokens=counts.cache_write,
                output_tokens=counts.output,
                output_reasoning_tokens=counts.reasoning,
            ),
            model_ref=model,
            provider_id=provider,
            genai_request_timestamp=at,
        ).total_price
    except LookupError:
        raise
    except Exception:  # the catalog cannot price this usage for this model
        return None


def expected_status(provider: str, model: str, counts: TokenCounts, at: datetime) -> str:
    _, info = get_snapshot().find_provider_model(model, None, provider, None)
    price = info.get_prices(at)
    missing = {c for c, key in COMPONENT_KEYS.items() if getattr(price, key) is None}
    present = {
        "input": counts.input - counts.cache_read - counts.cache_write,
        "cache_read": counts.cache_read,
        "cache_write": counts.cache_write,
        "output": counts.output,
    }
    return "partial" if any(present[c] > 0 for c in missing) else "priced"


@settings(max_examples=1_500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls())
def test_every_catalog_model_bills_exactly_what_the_catalog_computes(call):
    provider, model, counts, at = call

    priced = PRICER.price_usage(provider, model, "proj", at, counts)
    expected = catalog_answer(provider, model, counts, at)

    if expected is None:
        assert (priced.status, priced.cost_usd) == ("unpriced", 0)
        assert priced.detail.startswith("catalog error:")
    else:
        assert priced.cost_usd == expected
        assert priced.status == expected_status(provider, model, counts, at)
        assert (priced.catalog_provider, priced.catalog_model) == (provider, model)


# --- batches through the row builder, with overrides ------------------------------------------------

OVERRIDES = textwrap.dedent(
    """\
    [[override]]
    name = "gpt-4o-contract"
    provider = "openai"
    model = "gpt-4o"
    effective_from = 2026-01-01
    input_mtok = "2"
    cache_read_mtok = "0.5"
    output_mtok = "8"

    [[override]]
    name = "acme-sonnet"
    provider = "anthropic"
    model = "claude-sonnet-4-5"
    project = "acme"
    effective_from = 2025-10-01
    input_mtok = "2.4"
    cache_read_mtok = "0.24"
    cache_write_mtok = "3"
    output_mtok = "12"
    """
)
BATCH_PRICER = CatalogPricer(parse_price_overrides(OVERRIDES, origin="prices.toml"))
CONTRACTS = {
    # (provider, model, project or None): (starts, ModelPrice with the override's prices)
    ("openai", "gpt-4o", None): (
        datetime(2026, 1, 1, tzinfo=UTC),
        ModelPrice(input_mtok=Decimal(2), cache_read_mtok=Decimal("0.5"), output_mtok=Decimal(8)),
    ),
    ("anthropic", "claude-sonnet-4-5", "acme"): (
        datetime(2025, 10, 1, tzinfo=UTC),
        ModelPrice(input_mtok=Decimal("2.4"), cache_read_mtok=Decimal("0.24"), cache_write_mtok=Decimal(3), output_mtok=Decimal(12)),
    ),
}
BATCH_MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "o4-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
    ("mistral", "mistral-small-latest"),
    ("x-ai", "grok-3-mini"),
]


@st.composite
def events(draw: st.DrawFn):
    provider, model = draw(st.sampled_from(BATCH_MODELS))
    input_tokens = draw(st.one_of(st.integers(0, 400_000), st.sampled_from([199_999, 200_000, 200_001])))
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    output = draw(st.integers(0, 100_000))
    return make_event(
        provider=provider,
        model=model,
        project_id=draw(st.sampled_from(["acme", "globex"])),
        timestamp=draw(st.datetimes(min_value=datetime(2025, 6, 1), max_value=datetime(2026, 11, 1), timezones=st.just(UTC))),
        usage={
            "input_tokens": input_tokens,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "output_tokens": output,
            "reasoning_tokens": draw(st.integers(0, output)),
        },
    )


def expected_cost(event) -> Decimal:
    u = event.usage
    usage = CatalogUsage(
        input_tokens=u.input_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
        output_tokens=u.output_tokens,
        output_reasoning_tokens=u.reasoning_tokens,
    )
    for project in (event.project_id, None):
        contract = CONTRACTS.get((event.provider, event.model, project))
        if contract is not None and event.timestamp >= contract[0]:
            return contract[1].calc_price(usage)["total_price"]
    return calc_price(usage, model_ref=event.model, provider_id=event.provider, genai_request_timestamp=event.timestamp).total_price


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), min_size=1, max_size=25))
def test_every_row_of_a_batch_bills_the_catalog_or_the_override_in_force(batch):
    origin = MessageOrigin("llm.usage.events", 0, 0, b"acme")
    decoded = [DecodedEvent(e, origin, i) for i, e in enumerate(batch)]

    rows = build_chunk_rows(copies_of(decoded), [], price=BATCH_PRICER, window_seconds=60, ingested_at=datetime.now(UTC))

    cost_at = EVENT_COLUMNS.index("cost_usd")
    id_at = EVENT_COLUMNS.index("event_id")
    billed = {row[id_at]: row[cost_at] for row in rows.event_rows}
    assert billed == {e.event_id: stored_cost(expected_cost(e)) for e in batch}


@settings(max_examples=300, deadline=None)
@given(
    prices=st.tuples(*[st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)] * 4),
    counts=st.tuples(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9)),
)
def test_override_costs_are_the_catalogs_arithmetic_on_the_override_prices(prices, counts):
    input_mtok, cache_read_mtok, cache_write_mtok, output_mtok = prices
    input_tokens = counts[0] + counts[1] + counts[2]
    text = (
        f'[[override]]\nprovider = "p"\nmodel = "m"\ninput_mtok = "{input_mtok}"\ncache_read_mtok = "{cache_read_mtok}"\n'
        f'cache_write_mtok = "{cache_write_mtok}"\noutput_mtok = "{output_mtok}"\n'
    )
    pricer = CatalogPricer(parse_price_overrides(text))
    token_counts = TokenCounts(input_tokens, counts[1], counts[2], counts[3])

    priced = pricer.price_usage("p", "m", None, datetime(2026, 1, 1, tzinfo=UTC), token_counts)

    catalog_shaped = ModelPrice(
        input_mtok=input_mtok, cache_read_mtok=cache_read_mtok, cache_write_mtok=cache_write_mtok, output_mtok=output_mtok
    )
    assert priced.cost_usd == catalog_shaped.calc_price(token_counts.as_catalog_usage())["total_price"]
    assert priced.status == "priced"
    assert stored_cost(priced.cost_usd) == priced.cost_usd  # fits Decimal(38, 18) exactly


@pytest.mark.parametrize("seed", range(3))
def test_catalog_lookups_do_not_leak_between_providers(seed):
    # The same model id under two providers can have two prices; the cache keys on both.
    import random

    rng = random.Random(seed)
    pairs = [("openai", "gpt-4o"), ("azure", "gpt-4o"), ("openrouter", "openai/gpt-4o"), ("github-copilot", "gpt-4o")]
    pricer = CatalogPricer()
    for _ in range(200):
        provider, model = rng.choice(pairs)
        counts = TokenCounts(rng.randrange(0, 10_000), 0, 0, rng.randrange(0, 10_000))
        at = datetime(2026, rng.randrange(1, 12), 1, tzinfo=UTC)
        assert pricer.price_usage(provider, model, None, at, counts).cost_usd == catalog_answer(provider, model, counts, at)
