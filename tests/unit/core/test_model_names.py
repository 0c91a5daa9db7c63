"""Model names as they arrive: what the catalog matches itself, each explicit rule, and what is never guessed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stream_app.core.model_names import NAME_RULES, PROVIDER_ALIASES, normalize_provider, rewritten_names
from stream_app.core.pricing import CatalogPricer, TokenCounts

WHEN = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
COUNTS = TokenCounts(1_000, 0, 0, 100)


@pytest.fixture(scope="module")
def pricer() -> CatalogPricer:
    return CatalogPricer()


def matched(pricer: CatalogPricer, provider: str, model: str) -> tuple[str, str, str]:
    priced = pricer.price_usage(provider, model, "proj", WHEN, COUNTS)
    return priced.status, f"{priced.catalog_provider}/{priced.catalog_model}", priced.detail


# --- the rules, one by one (pure) ----------------------------------------------------------------


def never_same(prefix: str) -> bool:
    return False


def only(*names: str):
    return lambda prefix: prefix in names


def test_rules_are_few_and_in_a_fixed_order():
    assert [r.name for r in NAME_RULES] == ["provider-prefix", "resource-name", "bedrock-geo-profile", "latest-alias"]


def test_provider_prefix_is_stripped_only_when_it_names_the_events_provider():
    assert list(rewritten_names("openai", "openai/gpt-4o", only("openai"))) == [("provider-prefix", "gpt-4o")]
    assert list(rewritten_names("openai", "anthropic/claude-3-5-sonnet", only("openai"))) == []


@pytest.mark.parametrize(
    "model",
    ["models/gemini-2.5-pro", "publishers/google/models/gemini-2.5-pro", "projects/p-1/locations/us-central1/publishers/google/models/gemini-2.5-pro"],
)
def test_google_resource_names(model):
    assert list(rewritten_names("google", model, never_same)) == [("resource-name", "gemini-2.5-pro")]


def test_resource_names_only_for_google():
    assert list(rewritten_names("openai", "models/gpt-4o", never_same)) == []


@pytest.mark.parametrize("geo", ["us", "eu", "apac", "jp", "au", "ca", "us-gov"])
def test_bedrock_geographic_profiles(geo):
    model = f"{geo}.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert list(rewritten_names("aws", model, never_same)) == [
        ("bedrock-geo-profile", "anthropic.claude-sonnet-4-5-20250929-v1:0")
    ]


def test_bedrock_global_profile_is_never_rewritten():
    # Global profiles have their own price; stripping "global." would bill the regional one.
    assert list(rewritten_names("aws", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", never_same)) == []


def test_latest_alias():
    assert list(rewritten_names("openai", "gpt-5-latest", never_same)) == [("latest-alias", "gpt-5")]
    assert list(rewritten_names("openai", "-latest", never_same)) == []


def test_rules_apply_cumulatively():
    assert list(rewritten_names("openai", "OpenAI/GPT-5-latest", only("openai"))) == [
        ("provider-prefix", "gpt-5-latest"),
        ("provider-prefix+latest-alias", "gpt-5"),
    ]


@pytest.mark.parametrize(
    ("given", "normalized"),
    [("OpenAI", "openai"), (" azure_openai ", "azure"), ("Azure-OpenAI", "azure"), ("fireworks_ai", "fireworks"), ("togetherai", "together"), ("xai", "xai")],
)
def test_normalize_provider(given, normalized):
    assert normalize_provider(given) == normalized


def test_provider_aliases_are_few():
    assert len(PROVIDER_ALIASES) <= 8


# --- what the pricer makes of real names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "catalog", "rule"),
    [
        # matched by the catalog itself
        ("openai", "gpt-4o-2024-11-20", "openai/gpt-4o", ""),
        ("openai", "gpt-5.2-20251211", "openai/gpt-5.2", ""),  # compact date, the catalog's own fallback
        ("anthropic", "claude-3-5-sonnet-latest", "anthropic/claude-3-5-sonnet", ""),
        ("anthropic", "claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4-5", ""),
        ("google-vertex", "claude-sonnet-4-5@20250929", "google/claude-sonnet-4-5", ""),
        ("openrouter", "openai/gpt-4o-2024-08-06", "openrouter/openai/gpt-4o", ""),
        ("aws", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws/regional.anthropic.claude-sonnet-4-5-20250929-v1:0", ""),
        ("aws", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws/global.anthropic.claude-sonnet-4-5-20250929-v1:0", ""),
        ("bedrock_converse", "us.amazon.nova-pro-v1:0", "aws/amazon.nova-pro-v1:0", ""),
        ("litellm", "anthropic/claude-3-5-sonnet-20241022", "anthropic/claude-3-5-sonnet", ""),
        ("azure", "gpt-35-turbo", "azure/gpt-3.5-turbo", ""),
        ("mistralai", "codestral-latest", "mistral/codestral", ""),
        # matched by our rules
        ("openai", "openai/gpt-4o", "openai/gpt-4o", "provider-prefix"),
        ("azure", "azure/gpt-4o", "azure/gpt-4o", "provider-prefix"),
        ("google", "models/gemini-2.5-pro", "google/gemini-2.5-pro", "resource-name"),
        ("aws", "ca.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws/regional.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock-geo-profile"),
        ("openai", "gpt-4o-mini-latest", "openai/gpt-4o-mini", "latest-alias"),
        ("anthropic", "claude-opus-4-latest", "anthropic/claude-opus-4-0", "latest-alias"),
    ],
)
def test_names_as_they_arrive(pricer, provider, model, catalog, rule):
    status, found, detail = matched(pricer, provider, model)

    assert (status, found) == ("priced", catalog)
    if rule:
        assert detail.endswith(f"by name rule {rule}")
    else:
        assert detail == ""


@pytest.mark.parametrize(
    ("provider", "model", "why"),
    [
        # A dated snapshot the catalog does not list: its price may differ, so no date stripping.
        ("mistral", "mistral-small-2409", "has no model 'mistral-small-2409'"),
        # The same model name under a provider the catalog does not know: no cross-provider guess.
        ("acme-llm-cloud", "gpt-4o", "has no provider 'acme-llm-cloud'"),
        # A prefix naming another provider is not stripped.
        ("openai", "anthropic/claude-3-5-sonnet", "has no model 'anthropic/claude-3-5-sonnet'"),
        # OpenRouter variants change the price (":free" is free): never priced as the base model.
        ("openrouter", "openai/gpt-4o:nitro", "has no model 'openai/gpt-4o:nitro'"),
        # An Azure deployment with its own name: only an [[alias]] can say what it is.
        ("azure", "prod-gpt4o-eu", "has no model 'prod-gpt4o-eu'"),
        # A Bedrock id under the vendor's provider name is not moved to Bedrock.
        ("anthropic", "anthropic.claude-3-5-sonnet-20241022-v2:0", "has no model"),
        # A fine-tuned model the catalog cannot know.
        ("openai", "ft:gpt-4o-mini:acme:support-v3", "has no model"),
    ],
)
def test_names_that_are_never_guessed(pricer, provider, model, why):
    status, found, detail = matched(pricer, provider, model)

    assert (status, found) == ("unpriced", "/")
    assert why in detail
