"""Each provider's native usage maps to SPEC §1 exactly: cache and reasoning tokens neither lost nor doubled."""

from __future__ import annotations

from decimal import Decimal

import pytest

from producers.errors import MissingDependencyError
from producers.usage_mapping import (
    add_usage,
    build_usage,
    usage_from_anthropic,
    usage_from_catalog,
    usage_from_openai_chat,
    usage_from_openai_responses,
)
from schemas import Usage
from tests.unit.producers.provider_fakes import (
    anthropic_message,
    anthropic_usage,
    openai_chat_completion,
    openai_chat_usage,
    openai_response,
    openai_responses_usage,
)


def split(usage: Usage) -> tuple[int, int, int, int, int]:
    return (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
            usage.reasoning_tokens)


def test_openai_chat_prompt_tokens_already_include_cached_tokens() -> None:
    mapped = usage_from_openai_chat(openai_chat_usage(prompt=2006, completion=300, cached=1920, reasoning=192))

    assert split(mapped.usage) == (2006, 300, 1920, 0, 192)
    assert mapped.usage.total_tokens == 2306
    assert mapped.provider_cost is None


def test_openai_chat_cache_writes_and_audio_details_are_kept() -> None:
    native = openai_chat_usage(prompt=5000, completion=10)
    native["prompt_tokens_details"].update(cache_write_tokens=4000, audio_tokens=12)

    mapped = usage_from_openai_chat(native)

    assert split(mapped.usage) == (5000, 10, 0, 4000, 0)
    assert mapped.details == {"input_audio_tokens": 12}


def test_openai_chat_without_details_counts_no_cache_or_reasoning() -> None:
    mapped = usage_from_openai_chat({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})

    assert split(mapped.usage) == (10, 5, 0, 0, 0)


def test_gateway_cost_is_kept_as_an_exact_decimal() -> None:
    native = {**openai_chat_usage(prompt=10, completion=5), "cost": 0.000123}

    assert usage_from_openai_chat(native).provider_cost == Decimal("0.000123")


def test_openai_responses_input_includes_cached_and_output_includes_reasoning() -> None:
    mapped = usage_from_openai_responses(openai_responses_usage(1200, 900, cached=1024, reasoning=640))

    assert split(mapped.usage) == (1200, 900, 1024, 0, 640)


def test_anthropic_input_tokens_exclude_cache_so_ours_add_them() -> None:
    mapped = usage_from_anthropic(anthropic_usage(input_tokens=12, output_tokens=6, cache_read=3000, cache_write=1500))

    assert split(mapped.usage) == (12 + 3000 + 1500, 6, 3000, 1500, 0)
    assert mapped.details["cache_write_5m_tokens"] == 1500
    assert mapped.details["service_tier"] == "standard"


def test_anthropic_one_hour_cache_writes_are_kept_apart_for_pricing() -> None:
    native = anthropic_usage(10, 5, cache_write=700)
    native["cache_creation"] = {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 500}

    mapped = usage_from_anthropic(native)

    assert mapped.usage.cache_write_tokens == 700
    assert (mapped.details["cache_write_5m_tokens"], mapped.details["cache_write_1h_tokens"]) == (200, 500)


def test_anthropic_thinking_tokens_become_reasoning_tokens() -> None:
    native = {**anthropic_usage(100, 800), "output_tokens_details": {"thinking_tokens": 600}}

    assert usage_from_anthropic(native).usage.reasoning_tokens == 600


def test_sdk_objects_map_like_their_json() -> None:
    openai = pytest.importorskip("openai")
    anthropic = pytest.importorskip("anthropic")
    chat = openai.types.chat.ChatCompletion.model_validate(
        openai_chat_completion(openai_chat_usage(100, 40, cached=64, reasoning=8))
    )
    message = anthropic.types.Message.model_validate(anthropic_message(anthropic_usage(5, 7, 30, 20)))

    assert split(usage_from_openai_chat(chat.usage).usage) == (100, 40, 64, 0, 8)
    assert split(usage_from_anthropic(message.usage).usage) == (55, 7, 30, 20, 0)


def test_inconsistent_provider_numbers_are_raised_to_fit_and_flagged_never_lowered() -> None:
    details: dict = {}

    usage = build_usage(input_tokens=10, output_tokens=5, cache_read_tokens=30, reasoning_tokens=9, details=details)

    assert split(usage) == (30, 9, 30, 0, 9)
    assert "cache_read_tokens + cache_write_tokens (30) > input_tokens (10)" in details["usage_anomaly"]
    assert "reasoning_tokens (9) > output_tokens (5)" in details["usage_anomaly"]


def test_null_and_missing_counts_are_zero() -> None:
    mapped = usage_from_anthropic({"input_tokens": 4, "output_tokens": 2, "cache_read_input_tokens": None})

    assert split(mapped.usage) == (4, 2, 0, 0, 0)


def test_usages_add_part_by_part() -> None:
    total = add_usage(build_usage(input_tokens=10, output_tokens=2, cache_read_tokens=4),
                      build_usage(input_tokens=5, output_tokens=3, reasoning_tokens=1))

    assert split(total) == (15, 5, 4, 0, 1)
    assert total.total_tokens == 20


@pytest.mark.parametrize(
    ("body", "provider", "flavor", "ours"),
    [
        (openai_chat_completion(openai_chat_usage(2006, 300, cached=1920, reasoning=192)), "openai", "chat",
         lambda body: usage_from_openai_chat(body["usage"])),
        (openai_response(openai_responses_usage(1200, 900, cached=1024, reasoning=640)), "openai", "responses",
         lambda body: usage_from_openai_responses(body["usage"])),
        (anthropic_message(anthropic_usage(12, 6, cache_read=3000, cache_write=1500)), "anthropic", "default",
         lambda body: usage_from_anthropic(body["usage"])),
    ],
)
def test_our_mappers_agree_with_genai_prices_extractors(body, provider, flavor, ours) -> None:
    pytest.importorskip("genai_prices")

    theirs = usage_from_catalog(body, provider, flavor)

    assert split(theirs.usage) == split(ours(body).usage)


def test_catalog_extraction_without_genai_prices_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_genai_prices(name, *args, **kwargs):
        if name.startswith("genai_prices"):
            raise ImportError("blocked")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_genai_prices)
    with pytest.raises(MissingDependencyError, match="pip install genai-prices"):
        usage_from_catalog({"usage": {}}, "google")
