"""How every event says how it was priced: status, source, catalog match and detail; overrides and aliases."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price
from genai_prices.types import ModelPrice

from stream_app.core.price_overrides import parse_price_overrides
from stream_app.core.pricing import (
    CATALOG_SOURCE,
    PROVIDER_COST_SOURCE,
    CatalogPricer,
    PriceStatus,
    TokenCounts,
    configure_default_pricer,
    fit_linear_price,
    override_linear_price,
    price_event,
    stored_cost,
)
from stream_app.errors import ConfigurationError
from stream_app.settings import load_settings
from tests.factories import make_event

WHEN = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def pricer_with(text: str) -> CatalogPricer:
    return CatalogPricer(parse_price_overrides(textwrap.dedent(text), origin="prices.toml"))


def price(pricer: CatalogPricer, provider: str, model: str, counts: TokenCounts, *, at: datetime = WHEN, project: str = "proj-acme", provider_cost: str | None = None):
    return pricer.price_usage(provider, model, project, at, counts, None if provider_cost is None else Decimal(provider_cost))


CATALOG = CatalogPricer()


def test_statuses_are_the_documented_four():
    assert PriceStatus.ALL == ("priced", "partial", "provider_reported", "unpriced")


# --- catalog ------------------------------------------------------------------------------------


def test_priced_by_the_catalog():
    priced = price(CATALOG, "openai", "gpt-4o", TokenCounts(1_000, 200, 0, 100))

    assert (priced.status, priced.source, priced.catalog_provider, priced.catalog_model, priced.detail) == (
        "priced", CATALOG_SOURCE, "openai", "gpt-4o", "",
    )


def test_cache_writes_without_a_cache_write_price_are_partial_and_billed_like_the_catalog():
    # gpt-4o-mini has no cache-write price: the catalog bills those tokens at the input price.
    counts = TokenCounts(1_000, 0, 400, 100)

    priced = price(CATALOG, "openai", "gpt-4o-mini", counts)

    # 1000×0.15 + 100×0.6 = 210 µ$, the 400 cache-write tokens inside the 1000 at $0.15
    assert priced.cost_usd == Decimal("0.00021")
    assert priced.status == "partial"
    assert priced.detail == "no cache_write price: cache-write tokens billed at the input price"
    assert priced.cost_usd == calc_price(
        CatalogUsage(input_tokens=1_000, cache_write_tokens=400, output_tokens=100), model_ref="gpt-4o-mini", provider_id="openai",
        genai_request_timestamp=WHEN,
    ).total_price


def test_the_same_model_without_cache_writes_is_priced():
    assert price(CATALOG, "openai", "gpt-4o-mini", TokenCounts(1_000, 500, 0, 100)).status == "priced"


def test_output_of_an_embedding_model_is_partial_not_silently_free():
    # text-embedding-3-small prices input only ($0.02): output tokens there are not billed.
    assert price(CATALOG, "openai", "text-embedding-3-small", TokenCounts(1_000, 0, 0, 0)).status == "priced"
    priced = price(CATALOG, "openai", "text-embedding-3-small", TokenCounts(1_000, 0, 0, 50))

    assert (priced.status, priced.cost_usd) == ("partial", Decimal("0.00002"))
    assert priced.detail == "no output price: output tokens not billed"


def test_a_catalog_model_without_any_token_price_is_partial_at_zero():
    # GitHub Copilot models are in the catalog without token prices (a subscription).
    priced = price(CATALOG, "github-copilot", "gpt-4o", TokenCounts(1_000, 100, 0, 10))

    assert (priced.status, priced.cost_usd) == ("partial", 0)
    assert "no input price" in priced.detail and "no output price" in priced.detail


def test_unknown_model_is_unpriced_at_zero_and_says_why():
    priced = price(CATALOG, "openai", "gpt-nonexistent-9000", TokenCounts(1_000, 0, 0, 10))

    assert (priced.status, priced.cost_usd, priced.source, priced.catalog_model) == ("unpriced", 0, CATALOG_SOURCE, "")
    assert priced.detail == f"the catalog ({CATALOG_SOURCE}) has no model 'gpt-nonexistent-9000' for provider 'openai'"


def test_unknown_model_with_a_provider_cost_bills_the_provider_cost():
    priced = price(CATALOG, "openrouter", "openai/gpt-4o:nitro", TokenCounts(1_000, 0, 0, 10), provider_cost="0.00261")

    assert (priced.status, priced.cost_usd, priced.source) == ("provider_reported", Decimal("0.00261"), PROVIDER_COST_SOURCE)
    assert "has no model 'openai/gpt-4o:nitro'" in priced.detail


def test_a_provider_cost_never_replaces_our_price():
    priced = price(CATALOG, "openai", "gpt-4o", TokenCounts(1_000, 200, 0, 100), provider_cost="99")

    assert (priced.status, priced.cost_usd) == ("priced", Decimal("0.00325"))


def test_price_event_takes_provider_cost_from_the_event():
    event = make_event(provider="openai", model="private-model", timestamp=WHEN, provider_cost="0.5")

    assert (price_event(event).status, price_event(event).cost_usd) == ("provider_reported", Decimal("0.5"))


# --- overrides --------------------------------------------------------------------------------------


CONTRACT = """\
[[override]]
name = "acme-contract-gpt-4o"
provider = "openai"
model = "gpt-4o"
effective_from = 2026-01-01
input_mtok = "2"
cache_read_mtok = "0.5"
output_mtok = "8"

[[override]]
name = "support-ft"
provider = "openai"
model = "ft:gpt-4o-mini:acme:support-v3"
project = "acme-support"
input_mtok = "0.30"
output_mtok = "1.20"

[[override]]
name = "private-llm"
provider = "acme-llm-cloud"
model = "acme-large"
input_mtok = "1"
cache_read_mtok = "0.1"
cache_write_mtok = "1.25"
output_mtok = "3"

[[alias]]
provider = "azure"
model = "prod-gpt4o-eu"
catalog_model = "gpt-4o"
"""


@pytest.fixture(scope="module")
def contract() -> CatalogPricer:
    return pricer_with(CONTRACT)


def test_before_its_effective_date_the_catalog_prices(contract):
    priced = price(contract, "openai", "gpt-4o", TokenCounts(1_000, 200, 0, 100), at=datetime(2025, 12, 31, 23, 59, tzinfo=UTC))

    assert (priced.source, priced.cost_usd) == (CATALOG_SOURCE, Decimal("0.00325"))


def test_from_its_effective_date_the_override_prices(contract):
    priced = price(contract, "openai", "gpt-4o", TokenCounts(1_000, 200, 0, 100), at=datetime(2026, 1, 1, tzinfo=UTC))

    # 800×2 + 200×0.5 + 100×8 = 2,500 µ$
    assert priced.cost_usd == Decimal("0.0025")
    assert (priced.status, priced.source) == ("priced", "override:prices.toml#acme-contract-gpt-4o")
    assert (priced.catalog_provider, priced.catalog_model) == ("openai", "gpt-4o")


@pytest.mark.parametrize("name", ["gpt-4o-2024-08-06", "openai/gpt-4o", "GPT-4o"])
def test_an_override_by_catalog_model_covers_every_name_the_catalog_maps_to_it(contract, name):
    priced = price(contract, "openai", name, TokenCounts(1_000, 200, 0, 100))

    assert (priced.source, priced.cost_usd) == ("override:prices.toml#acme-contract-gpt-4o", Decimal("0.0025"))


def test_a_dated_name_with_its_own_catalog_price_is_not_covered(contract):
    # gpt-4o-2024-05-13 is its own catalog model: the gpt-4o contract does not apply to it.
    assert price(contract, "openai", "gpt-4o-2024-05-13", TokenCounts(1_000, 0, 0, 100)).source == CATALOG_SOURCE


def test_a_project_override_applies_to_that_project_only(contract):
    counts = TokenCounts(1_000_000, 0, 0, 1_000_000)

    mine = price(contract, "openai", "ft:gpt-4o-mini:acme:support-v3", counts, project="acme-support")
    theirs = price(contract, "openai", "ft:gpt-4o-mini:acme:support-v3", counts, project="globex")

    assert (mine.status, mine.cost_usd, mine.source) == ("priced", Decimal("1.5"), "override:prices.toml#support-ft")
    assert mine.detail == ""
    assert (theirs.status, theirs.cost_usd) == ("unpriced", 0)


def test_an_override_without_a_cache_price_bills_cache_at_the_input_price_as_partial(contract):
    priced = price(contract, "openai", "ft:gpt-4o-mini:acme:support-v3", TokenCounts(1_000, 400, 0, 0), project="acme-support")

    assert (priced.status, priced.cost_usd) == ("partial", Decimal("0.0003"))
    assert priced.detail == "no cache_read price: cache-read tokens billed at the input price"


def test_a_private_provider_and_model(contract):
    # 400×1 + 500×0.1 + 100×1.25 + 200×3 = 400 + 50 + 125 + 600 = 1,175 µ$
    priced = price(contract, "Acme-LLM-Cloud", "acme-large", TokenCounts(1_000, 500, 100, 200))

    assert (priced.status, priced.cost_usd, priced.source) == ("priced", Decimal("0.001175"), "override:prices.toml#private-llm")
    assert (priced.catalog_provider, priced.catalog_model, priced.detail) == ("", "", "")


@pytest.mark.parametrize(
    "counts",
    [TokenCounts(0, 0, 0, 0), TokenCounts(1, 1, 0, 1), TokenCounts(10_000, 2_000, 3_000, 5_000, 4_000), TokenCounts(10**9, 10**8, 10**8, 10**9)],
)
def test_override_arithmetic_is_the_catalogs_arithmetic(contract, counts):
    entry = next(o for o in contract.overrides.overrides if o.name == "private-llm")
    catalog_shaped = ModelPrice(input_mtok=Decimal(1), cache_read_mtok=Decimal("0.1"), cache_write_mtok=Decimal("1.25"), output_mtok=Decimal(3))

    assert override_linear_price(entry).cost(counts) == catalog_shaped.calc_price(counts.as_catalog_usage())["total_price"]


def test_an_alias_prices_an_azure_deployment_as_its_catalog_model(contract):
    priced = price(contract, "azure", "prod-gpt4o-eu", TokenCounts(1_000, 200, 0, 100))

    assert (priced.status, priced.cost_usd, priced.source) == ("priced", Decimal("0.00325"), CATALOG_SOURCE)
    assert (priced.catalog_provider, priced.catalog_model) == ("azure", "gpt-4o")
    assert priced.detail == "alias azure/prod-gpt4o-eu -> azure/gpt-4o (prices.toml line 27 ([[alias]] #1))"


def test_an_alias_to_a_model_the_catalog_lacks_is_refused_at_start():
    with pytest.raises(ConfigurationError) as caught:
        pricer_with('[[alias]]\nprovider = "azure"\nmodel = "dep"\ncatalog_model = "gpt-4oo"\n')

    message = str(caught.value)
    assert "prices.toml line 1 ([[alias]] #1): the catalog" in message
    assert "has no model 'gpt-4oo' for provider 'azure' (close: gpt-4o" in message
    assert "fix catalog_model" in message


def test_the_pricer_from_settings_reads_the_price_file(monkeypatch, tmp_path: Path):
    path = tmp_path / "negotiated.toml"
    path.write_text(CONTRACT)
    monkeypatch.setenv("USAGE_PRICE_OVERRIDES_FILE", str(path))

    pricer = CatalogPricer.from_settings(load_settings())

    assert price(pricer, "openai", "gpt-4o", TokenCounts(1, 0, 0, 0)).source == "override:negotiated.toml#acme-contract-gpt-4o"


def test_the_process_wide_pricer_can_be_configured(contract):
    event = make_event(provider="acme-llm-cloud", model="acme-large", timestamp=WHEN)
    try:
        configure_default_pricer(contract)
        assert price_event(event).source == "override:prices.toml#private-llm"
    finally:
        configure_default_pricer(None)
    assert price_event(event).status == "unpriced"


# --- exactness details ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "stored"),
    [
        (Decimal("0.00325"), Decimal("0.00325")),
        (Decimal("4.1666666666666664E-8"), Decimal("0.000000041666666667")),
        (Decimal("0.0000000000000000005"), Decimal("0")),  # half to even
        (Decimal("0.0000000000000000015"), Decimal("0.000000000000000002")),
        (Decimal("123456789012.0000000000000000014"), Decimal("123456789012.000000000000000001")),
    ],
)
def test_costs_are_rounded_half_even_to_what_clickhouse_stores(cost, stored):
    assert stored_cost(cost) == stored
    assert stored_cost(cost).as_tuple().exponent == -18


def test_float_artifact_catalog_prices_use_the_catalog_directly():
    # OpenRouter's gemini-2.5-flash cache write is 0.0833…3 $/M: a per-token price with
    # more than 18 decimal places, so no fitted shortcut; the cost is the catalog's own.
    counts = TokenCounts(7_001, 0, 3_333, 17)
    priced = price(CATALOG, "openrouter", "google/gemini-2.5-flash", counts)

    expected = calc_price(
        counts.as_catalog_usage(), model_ref="google/gemini-2.5-flash", provider_id="openrouter", genai_request_timestamp=WHEN
    ).total_price
    assert priced.cost_usd == expected
    assert expected != stored_cost(expected)  # longer than ClickHouse keeps: rounded on write


def test_a_fit_is_refused_when_it_cannot_be_exact():
    model_price = ModelPrice(input_mtok=Decimal(1), cache_write_mtok=Decimal("0.0833333333333333"), output_mtok=Decimal(2))

    assert fit_linear_price(model_price, (), 0) is None
    assert fit_linear_price(ModelPrice(input_mtok=Decimal(1), output_mtok=Decimal(2)), (), 0) is not None
