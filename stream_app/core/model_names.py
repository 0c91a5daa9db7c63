"""Provider and model names as events carry them, turned into catalog lookups by explicit rules.

The catalog (genai-prices) is always asked first with the name exactly as it arrives. Its
own match rules already cover most real names: the dated versions it lists
(`gpt-4o-2024-08-06`, `claude-3-5-sonnet-20241022`, compact `gpt-5.2-20251211`), the
`-latest` aliases it lists, Bedrock ids with `us.`/`eu.`/`apac.`/`global.` prefixes and ARNs
(provider `aws`, or `bedrock`), OpenRouter `vendor/model` (provider `openrouter`), Azure
models named after the OpenAI model (provider `azure`), and LiteLLM `provider/model`
(provider `litellm`). Only when it says no are the rules below tried, in order and
cumulatively, each rewriting to a name for the *same* model:

- `provider-prefix`: `openai/gpt-4o` from provider `openai` -> `gpt-4o` (the prefix names
  the event's own provider; `anthropic/...` from provider `openai` is left alone).
- `resource-name`: `models/gemini-2.5-pro` or
  `projects/p/locations/l/publishers/google/models/gemini-2.5-pro` -> `gemini-2.5-pro`
  (Gemini and Vertex API resource names; provider `google` only).
- `bedrock-geo-profile`: `ca.anthropic.claude-...` -> `anthropic.claude-...` (provider
  `aws` only). A geographic cross-region profile bills the in-region price; `global.`
  profiles are priced differently and are never rewritten.
- `latest-alias`: `gpt-5-latest` -> `gpt-5` (`X-latest` is the provider's alias for X).

Deliberately not done, because each would bill a different model: stripping a date or
version suffix the catalog does not list (snapshots can have their own price:
`gpt-4o-2024-05-13` costs twice `gpt-4o`; `mistral-small-2409` is not `mistral-small-2503`),
matching under another provider than the event's, fuzzy matching, and OpenRouter variant
suffixes (`:free`, `:nitro`, `:floor` change the price). Such names stay unpriced, show up
in `usage-pipeline prices missing`, and an `[[alias]]` or `[[override]]` in the price file
decides them explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Provider names the catalog would miss or resolve to the wrong provider (genai-prices maps
# "azure_openai" to openai because it contains "openai"). Everything else goes to the
# catalog's own provider matching.
PROVIDER_ALIASES: dict[str, str] = {
    "azure_openai": "azure",
    "azure-openai": "azure",
    "fireworks_ai": "fireworks",
    "fireworks-ai": "fireworks",
    "togetherai": "together",
}


def normalize_provider(name: str) -> str:
    """The provider name trimmed, lower-cased, and mapped through `PROVIDER_ALIASES`."""
    key = name.strip().lower()
    return PROVIDER_ALIASES.get(key, key)


# Is this prefix (the text before "/") a name of the event's own provider?
SameProvider = Callable[[str], bool]


@dataclass(frozen=True)
class NameRule:
    """One explicit rewrite of a model name; `rewrite` returns None when it does not apply."""

    name: str
    rewrite: Callable[[str, str, SameProvider], str | None]


def _provider_prefix(provider_id: str, model: str, same_provider: SameProvider) -> str | None:
    prefix, slash, rest = model.partition("/")
    if slash and rest and same_provider(prefix):
        return rest
    return None


_GOOGLE_RESOURCE = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/)?models/(?P<model>[^/]+)$")


def _resource_name(provider_id: str, model: str, same_provider: SameProvider) -> str | None:
    if provider_id != "google":
        return None
    match = _GOOGLE_RESOURCE.match(model)
    return match.group("model") if match else None


# Geographic inference-profile prefixes; "global." is a different price and is not here.
_BEDROCK_GEO = re.compile(r"^(?:us|eu|apac|jp|au|ca|us-gov)\.(?P<model>[a-z0-9-]+\..+)$")


def _bedrock_geo_profile(provider_id: str, model: str, same_provider: SameProvider) -> str | None:
    if provider_id != "aws":
        return None
    match = _BEDROCK_GEO.match(model)
    return match.group("model") if match else None


def _latest_alias(provider_id: str, model: str, same_provider: SameProvider) -> str | None:
    if model.endswith("-latest") and len(model) > len("-latest"):
        return model[: -len("-latest")]
    return None


NAME_RULES: tuple[NameRule, ...] = (
    NameRule("provider-prefix", _provider_prefix),
    NameRule("resource-name", _resource_name),
    NameRule("bedrock-geo-profile", _bedrock_geo_profile),
    NameRule("latest-alias", _latest_alias),
)


def rewritten_names(provider_id: str, model: str, same_provider: SameProvider) -> Iterator[tuple[str, str]]:
    """Each successive rewrite of `model` as (rule names joined by "+", new name).

    Rules apply cumulatively in `NAME_RULES` order, so `openai/gpt-5-latest` yields
    ("provider-prefix", "gpt-5-latest") and then ("provider-prefix+latest-alias", "gpt-5").
    The caller stops at the first name the catalog knows.
    """
    current = model.strip().lower()
    applied: list[str] = []
    for rule in NAME_RULES:
        rewritten = rule.rewrite(provider_id, current, same_provider)
        if rewritten and rewritten != current:
            current = rewritten
            applied.append(rule.name)
            yield "+".join(applied), current
