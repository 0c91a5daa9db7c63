"""Known prices of real models, worked out by hand from the bundled genai-prices catalog.

Every case is also checked against genai-prices' own `calc_price` for the name the
catalog matched, so a hand calculation that drifted from the catalog would show here.
Prices are USD per million tokens; a cost is Σ tokens × price / 1,000,000, where input
and output are totals (uncached input = input - cache read - cache write; reasoning is
part of output and billed as output unless the model has its own reasoning price).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price

from stream_app.core.pricing import CATALOG_SOURCE, CatalogPricer, price_event
from tests.factories import make_event

NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
EVENING = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Known:
    provider: str  # as the event carries it
    model: str  # as the event carries it
    at: datetime
    usage: dict[str, int]
    cost: str  # worked out by hand, see the comment of each case
    catalog: str  # "provider/model" the catalog matched
    status: str = "priced"


def usage(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0, reasoning: int = 0) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
    }


KNOWN = {
    # --- OpenAI ---------------------------------------------------------------------------
    # gpt-4o $2.50 in, $1.25 cached, $10 out: 800×2.5 + 200×1.25 + 100×10 = 3,250 µ$
    "openai-gpt-4o-cache-read": Known("openai", "gpt-4o", NOON, usage(1_000, 100, cache_read=200), "0.00325", "openai/gpt-4o"),
    # A dated name the catalog lists as the same price as gpt-4o.
    "openai-dated-gpt-4o-2024-08-06": Known(
        "openai", "gpt-4o-2024-08-06", NOON, usage(1_000, 100, cache_read=200), "0.00325", "openai/gpt-4o"
    ),
    # A dated name with a price of its own ($5 / $15): never billed as gpt-4o.
    # 1000×5 + 100×15 = 6,500 µ$
    "openai-dated-gpt-4o-2024-05-13": Known(
        "openai", "gpt-4o-2024-05-13", NOON, usage(1_000, 100), "0.0065", "openai/gpt-4o-2024-05-13"
    ),
    # o4-mini $1.10 in, $0.275 cached, $4.40 out; 2,500 of the 3,000 output are reasoning.
    # 1000×1.1 + 1000×0.275 + 3000×4.4 = 1,100 + 275 + 13,200 = 14,575 µ$
    "openai-o4-mini-reasoning": Known(
        "openai", "o4-mini", NOON, usage(2_000, 3_000, cache_read=1_000, reasoning=2_500), "0.014575", "openai/o4-mini"
    ),
    # o3 changed price on 2025-06-10: $10 / $40 before, $2 / $8 from then on.
    "openai-o3-before-repricing": Known(
        "openai", "o3", datetime(2025, 6, 9, 23, 59, tzinfo=UTC), usage(1_000, 1_000), "0.05", "openai/o3"
    ),
    "openai-o3-after-repricing": Known(
        "openai", "o3", datetime(2025, 6, 10, 0, 1, tzinfo=UTC), usage(1_000, 1_000), "0.01", "openai/o3"
    ),
    # gpt-5-nano $0.05 in: one token costs 5E-8 dollars.
    "openai-gpt-5-nano-one-token": Known("openai", "gpt-5-nano", NOON, usage(1, 0), "0.00000005", "openai/gpt-5-nano"),
    # --- Anthropic ------------------------------------------------------------------------
    # claude-sonnet-4-5 up to 200k input: $3 in, $0.30 cache read, $3.75 cache write, $15 out.
    # 4000×3 + 4000×0.3 + 2000×3.75 + 500×15 = 12,000 + 1,200 + 7,500 + 7,500 = 28,200 µ$
    "anthropic-sonnet-4-5-cache-read-and-write": Known(
        "anthropic", "claude-sonnet-4-5", NOON, usage(10_000, 500, cache_read=4_000, cache_write=2_000),
        "0.0282", "anthropic/claude-sonnet-4-5",
    ),
    # Long context: above 200k input *every* token costs $6 in, $0.60 cache read, $22.50 out.
    # 200,000×6 + 100,000×0.6 + 1,000×22.5 = 1,200,000 + 60,000 + 22,500 µ$
    "anthropic-sonnet-4-5-long-context-tier": Known(
        "anthropic", "claude-sonnet-4-5-20250929", NOON, usage(300_000, 1_000, cache_read=100_000),
        "1.2825", "anthropic/claude-sonnet-4-5",
    ),
    # A dated name: claude-3-5-sonnet $3 / $15. 1000×3 + 100×15 = 4,500 µ$
    "anthropic-dated-claude-3-5-sonnet-20241022": Known(
        "anthropic", "claude-3-5-sonnet-20241022", NOON, usage(1_000, 100), "0.0045", "anthropic/claude-3-5-sonnet"
    ),
    # A `-latest` alias the catalog lists.
    "anthropic-claude-3-5-haiku-latest": Known(
        # $0.80 in, $4 out: 1000×0.8 + 1000×4 = 4,800 µ$
        "anthropic", "claude-3-5-haiku-latest", NOON, usage(1_000, 1_000), "0.0048", "anthropic/claude-3-5-haiku-latest"
    ),
    # claude-sonnet-4-6 dropped its long-context tier on 2026-03-13 (a StartDateConstraint):
    # before, 300k input is all at $6 in / $22.50 out: 300,000×6 + 1,000×22.5 = 1,822,500 µ$;
    # from then on flat $3 / $15: 300,000×3 + 1,000×15 = 915,000 µ$.
    "anthropic-sonnet-4-6-before-price-change": Known(
        "anthropic", "claude-sonnet-4-6", datetime(2026, 3, 12, 23, 59, tzinfo=UTC), usage(300_000, 1_000),
        "1.8225", "anthropic/claude-sonnet-4-6",
    ),
    "anthropic-sonnet-4-6-after-price-change": Known(
        "anthropic", "claude-sonnet-4-6", datetime(2026, 3, 13, 0, 0, tzinfo=UTC), usage(300_000, 1_000),
        "0.915", "anthropic/claude-sonnet-4-6",
    ),
    # --- Google ---------------------------------------------------------------------------
    # gemini-2.5-pro above 200k input: $2.50 in, $15 out for every token.
    # 200,001×2.5 + 1,000×15 = 500,002.5 + 15,000 µ$
    "google-gemini-2-5-pro-long-context-tier": Known(
        "google", "gemini-2.5-pro", NOON, usage(200_001, 1_000), "0.5150025", "google/gemini-2.5-pro"
    ),
    # gemini-2.5-flash $0.30 in, $0.03 cached, $2.50 out; 1,500 of 2,000 output are reasoning.
    # 5000×0.3 + 5000×0.03 + 2000×2.5 = 1,500 + 150 + 5,000 = 6,650 µ$
    "google-gemini-2-5-flash-reasoning": Known(
        "google", "gemini-2.5-flash", NOON, usage(10_000, 2_000, cache_read=5_000, reasoning=1_500),
        "0.00665", "google/gemini-2.5-flash",
    ),
    # A Vertex provider name and a Gemini API resource name (name rule "resource-name").
    "google-resource-name-via-vertex": Known(
        "vertex_ai", "models/gemini-2.5-flash", NOON, usage(10_000, 2_000, cache_read=5_000), "0.00665",
        "google/gemini-2.5-flash",
    ),
    # --- DeepSeek: prices by time of day ------------------------------------------------------
    # deepseek-reasoner off-peak (16:30-00:30 UTC): $0.135 in, $0.035 cached, $0.55 out.
    # 400,000×0.135 + 600,000×0.035 + 100,000×0.55 = 54,000 + 21,000 + 55,000 µ$
    "deepseek-reasoner-off-peak": Known(
        "deepseek", "deepseek-reasoner", EVENING, usage(1_000_000, 100_000, cache_read=600_000, reasoning=80_000),
        "0.13", "deepseek/deepseek-reasoner",
    ),
    # Peak: $0.55 in, $0.14 cached, $2.19 out: 220,000 + 84,000 + 219,000 µ$
    "deepseek-reasoner-peak": Known(
        "deepseek", "deepseek-reasoner", NOON, usage(1_000_000, 100_000, cache_read=600_000, reasoning=80_000),
        "0.523", "deepseek/deepseek-reasoner",
    ),
    # --- Mistral ------------------------------------------------------------------------------
    # mistral-large-latest -> mistral-large, $2 / $6: 1000×2 + 1000×6 = 8,000 µ$
    "mistral-large-latest": Known("mistral", "mistral-large-latest", NOON, usage(1_000, 1_000), "0.008", "mistral/mistral-large"),
    # mistral-small-latest went from $0.10 / $0.30 to $0.15 / $0.60 on 2026-03-16.
    "mistral-small-latest-before-price-change": Known(
        "mistral", "mistral-small-latest", datetime(2026, 3, 15, 12, 0, tzinfo=UTC), usage(1_000_000, 1_000_000),
        "0.4", "mistral/mistral-small-latest",
    ),
    "mistral-small-latest-after-price-change": Known(
        "mistral", "mistral-small-latest", datetime(2026, 3, 16, 12, 0, tzinfo=UTC), usage(1_000_000, 1_000_000),
        "0.75", "mistral/mistral-small-latest",
    ),
    # --- xAI ----------------------------------------------------------------------------------
    # grok-4 (an alias of grok-4-0709): $3 in, $0.75 cached, $15 out.
    # 2000×3 + 8000×0.75 + 1000×15 = 6,000 + 6,000 + 15,000 µ$
    "xai-grok-4-cache-read": Known(
        "xai", "grok-4", NOON, usage(10_000, 1_000, cache_read=8_000), "0.027", "x-ai/grok-4-0709"
    ),
    # grok-3-mini $0.30 / $0.50, reasoning billed as output: 1000×0.3 + 2000×0.5 = 1,300 µ$
    "xai-grok-3-mini-reasoning": Known(
        "x-ai", "grok-3-mini", NOON, usage(1_000, 2_000, reasoning=1_800), "0.0013", "x-ai/grok-3-mini"
    ),
    # --- Groq -----------------------------------------------------------------------------------
    # llama-3.3-70b-versatile $0.59 / $0.79: 10,000×0.59 + 2,000×0.79 = 5,900 + 1,580 µ$
    "groq-llama-3-3-70b": Known(
        "groq", "llama-3.3-70b-versatile", NOON, usage(10_000, 2_000), "0.00748", "groq/llama-3.3-70b-versatile"
    ),
    # --- Perplexity: a model with its own reasoning price -------------------------------------
    # sonar-deep-research $2 in, $8 out, $3 reasoning: 1000×2 + 2000×8 + 8000×3 = 42,000 µ$
    "perplexity-reasoning-has-its-own-price": Known(
        "perplexity", "sonar-deep-research", NOON, usage(1_000, 10_000, reasoning=8_000), "0.042",
        "perplexity/sonar-deep-research",
    ),
    # --- Gateways and clouds ----------------------------------------------------------------------
    # OpenRouter `vendor/model`: anthropic/claude-3.5-sonnet $3 / $15.
    "openrouter-gateway-name": Known(
        "openrouter", "anthropic/claude-3.5-sonnet", NOON, usage(1_000, 100), "0.0045", "openrouter/anthropic/claude-3.5-sonnet"
    ),
    # Bedrock cross-region profile id: $3 in, $0.30 cached, $15 out: 800×3 + 200×0.3 + 100×15
    "bedrock-us-profile-id": Known(
        "bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", NOON, usage(1_000, 100, cache_read=200), "0.00396",
        "aws/regional.anthropic.claude-3-5-sonnet-20241022-v2:0",
    ),
    # Bedrock model id as an ARN.
    "bedrock-arn": Known(
        "aws", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20241022-v2:0", NOON,
        usage(1_000, 100, cache_read=200), "0.00396", "aws/regional.anthropic.claude-3-5-sonnet-20241022-v2:0",
    ),
    # Azure, the deployment named after the model: gpt-4o on Azure, $2.50 / $1.25 / $10.
    "azure-deployment-named-like-the-model": Known(
        "azure", "gpt-4o-2024-08-06", NOON, usage(1_000, 100, cache_read=200), "0.00325", "azure/gpt-4o"
    ),
    # `azure_openai` is Azure, not OpenAI (genai-prices alone would say openai).
    "azure-openai-provider-name": Known(
        "azure_openai", "gpt-4o", NOON, usage(1_000, 100, cache_read=200), "0.00325", "azure/gpt-4o"
    ),
    # A provider-prefixed name from the provider itself (name rule "provider-prefix").
    "provider-prefixed-name": Known("openai", "openai/gpt-4o", NOON, usage(1_000, 100, cache_read=200), "0.00325", "openai/gpt-4o"),
}


@pytest.fixture(scope="module")
def pricer() -> CatalogPricer:
    return CatalogPricer()


@pytest.mark.parametrize("case", KNOWN.values(), ids=KNOWN.keys())
def test_known_price(case: Known, pricer: CatalogPricer):
    event = make_event(provider=case.provider, model=case.model, timestamp=case.at, usage=case.usage)

    priced = pricer.price(event)

    assert priced.cost_usd == Decimal(case.cost)
    assert (priced.status, priced.source) == (case.status, CATALOG_SOURCE)
    assert f"{priced.catalog_provider}/{priced.catalog_model}" == case.catalog


@pytest.mark.parametrize("case", KNOWN.values(), ids=KNOWN.keys())
def test_known_price_is_the_catalogs_own_calculation(case: Known, pricer: CatalogPricer):
    event = make_event(provider=case.provider, model=case.model, timestamp=case.at, usage=case.usage)
    priced = pricer.price(event)
    u = event.usage

    expected = calc_price(
        CatalogUsage(
            input_tokens=u.input_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            output_tokens=u.output_tokens,
            output_reasoning_tokens=u.reasoning_tokens,
        ),
        model_ref=priced.catalog_model,
        provider_id=priced.catalog_provider,
        genai_request_timestamp=case.at,
    ).total_price

    assert priced.cost_usd == expected
    assert price_event(event).cost_usd == expected  # the process-wide pricer agrees


def test_the_cases_cover_what_the_issue_asks_for():
    providers = {k.catalog.split("/")[0] for k in KNOWN.values()}
    models = {k.catalog for k in KNOWN.values()}

    assert {"openai", "anthropic", "google", "deepseek", "mistral", "x-ai", "groq"} <= providers
    assert len(models) >= 12
