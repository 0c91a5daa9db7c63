"""Map each provider's native token usage to SPEC.md §1 `Usage`, exactly.

Pure functions over the provider's usage object, given as the SDK's pydantic model or as
the plain JSON dict: nothing here imports a provider SDK.

The providers count differently, and getting it wrong bills cache tokens twice or never:
- OpenAI (chat completions and Responses API): prompt/input tokens already include cached
  tokens, completion/output tokens already include reasoning tokens. Parts map as is.
- Anthropic: `input_tokens` EXCLUDES cache reads and cache writes; our `input_tokens`
  includes them, so ours = input + cache_read + cache_creation.

genai-prices ships the same knowledge as data for many more providers; `usage_from_catalog`
uses it (optional dependency) for providers without a mapper here, and the unit tests
check that both agree on OpenAI and Anthropic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

from producers.errors import MissingDependencyError
from schemas import Usage

ZERO_USAGE = Usage(input_tokens=0, output_tokens=0, total_tokens=0)


@dataclass(frozen=True, slots=True)
class MappedUsage:
    """A provider's usage in our terms, plus details our schema has no column for.

    `details` goes into the event's `provider_metadata`: cache-write TTL splits, server
    tool requests, and any inconsistency found in the provider's numbers, so that nothing
    the provider reported is lost.
    """

    usage: Usage
    provider_cost: Decimal | None = None
    details: dict[str, Any] = field(default_factory=dict)


def field_of(obj: Any, name: str) -> Any:
    """`obj[name]` for mappings, `obj.name` for SDK objects; None when absent."""
    if obj is None:
        return None
    kind = type(obj)
    if kind is dict:
        return obj.get(name)
    is_model = _MODEL_TYPES.get(kind)
    if is_model is None:
        is_model = _MODEL_TYPES[kind] = isinstance(obj, BaseModel)
    if is_model:
        # The SDKs' objects are pydantic models. A field missing from one (a gateway's
        # extra, a newer API's detail) costs ~5 µs through `getattr`, which builds an
        # AttributeError message: look in the instance's fields and extras first.
        values = obj.__dict__
        if name in values:
            return values[name]
        extra = obj.__pydantic_extra__
        if extra and name in extra:
            return extra[name]
        lacks = _CLASS_LACKS.get((kind, name))
        if lacks is None:
            # Asking a model class for a name it lacks costs ~2 µs (pydantic's metaclass
            # builds an AttributeError): asked once per class and name.
            lacks = _CLASS_LACKS[(kind, name)] = not hasattr(kind, name)
        if lacks:
            return None
    elif isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


# Whether a type is a pydantic model, by type: `isinstance` against an ABC is slow.
_MODEL_TYPES: dict[type, bool] = {}
# Whether a model class lacks an attribute, by (class, name): see `field_of`.
_CLASS_LACKS: dict[tuple[type, str], bool] = {}


def path_of(obj: Any, *names: str) -> Any:
    """Follow `names` through nested mappings/objects; None as soon as one is missing."""
    for name in names:
        obj = field_of(obj, name)
        if obj is None:
            return None
    return obj


def usage_from_openai_chat(native: Any) -> MappedUsage:
    """OpenAI chat completions usage (`prompt_tokens`, `completion_tokens`, details).

    `prompt_tokens` includes `prompt_tokens_details.cached_tokens` (cache reads) and
    `cache_write_tokens`; `completion_tokens` includes `reasoning_tokens`. OpenRouter and
    other compatible gateways add `usage.cost`, kept as the provider's own cost.
    """
    details: dict[str, Any] = {}
    for source, target in (
        (("prompt_tokens_details", "audio_tokens"), "input_audio_tokens"),
        (("completion_tokens_details", "audio_tokens"), "output_audio_tokens"),
        (("completion_tokens_details", "accepted_prediction_tokens"), "accepted_prediction_tokens"),
        (("completion_tokens_details", "rejected_prediction_tokens"), "rejected_prediction_tokens"),
    ):
        _keep_count(details, target, path_of(native, *source))
    return _openai_counted(native, "prompt_tokens", "completion_tokens", details)


def usage_from_openai_responses(native: Any) -> MappedUsage:
    """OpenAI Responses API usage (`input_tokens`, `output_tokens`, `*_tokens_details`).

    Same counting as chat: `input_tokens` includes `input_tokens_details.cached_tokens`
    and `cache_write_tokens`, `output_tokens` includes `output_tokens_details.reasoning_tokens`.
    """
    details: dict[str, Any] = {}
    write_ttls = path_of(native, "input_tokens_details", "cache_write_tokens_details")
    for ttl in ("ttl_30m_tokens", "ttl_12h_tokens"):
        _keep_count(details, f"cache_write_{ttl}", field_of(write_ttls, ttl))
    return _openai_counted(native, "input_tokens", "output_tokens", details)


def _openai_counted(native: Any, input_field: str, output_field: str, details: dict[str, Any]) -> MappedUsage:
    # Both OpenAI APIs count the same way, under their own names: the input total includes
    # `<input>_details.cached_tokens` and `.cache_write_tokens`, the output total includes
    # `<output>_details.reasoning_tokens`; gateways add the provider's own `cost`.
    input_details, output_details = f"{input_field}_details", f"{output_field}_details"
    usage = build_usage(
        input_tokens=_count(field_of(native, input_field)),
        output_tokens=_count(field_of(native, output_field)),
        cache_read_tokens=_count(path_of(native, input_details, "cached_tokens")),
        cache_write_tokens=_count(path_of(native, input_details, "cache_write_tokens")),
        reasoning_tokens=_count(path_of(native, output_details, "reasoning_tokens")),
        details=details,
    )
    return MappedUsage(usage, _decimal_or_none(field_of(native, "cost")), details)


def usage_from_anthropic(native: Any) -> MappedUsage:
    """Anthropic Messages usage: our input = input + cache_read + cache_creation tokens.

    Anthropic's `input_tokens` counts only the uncached part of the prompt. The 5-minute
    and 1-hour cache-write split (priced differently) and server tool requests are kept
    in `details`. `output_tokens` includes thinking; `output_tokens_details.thinking_tokens`
    becomes our reasoning tokens when the API reports it.
    """
    uncached = _count(field_of(native, "input_tokens"))
    cache_read = _count(field_of(native, "cache_read_input_tokens"))
    cache_write = _count(field_of(native, "cache_creation_input_tokens"))
    details: dict[str, Any] = {}
    creation = field_of(native, "cache_creation")
    _keep_count(details, "cache_write_5m_tokens", field_of(creation, "ephemeral_5m_input_tokens"))
    _keep_count(details, "cache_write_1h_tokens", field_of(creation, "ephemeral_1h_input_tokens"))
    server_tools = field_of(native, "server_tool_use")
    _keep_count(details, "web_search_requests", field_of(server_tools, "web_search_requests"))
    _keep_count(details, "web_fetch_requests", field_of(server_tools, "web_fetch_requests"))
    for name in ("service_tier", "inference_geo", "speed"):
        value = field_of(native, name)
        if isinstance(value, str):
            details[name] = value
    usage = build_usage(
        input_tokens=uncached + cache_read + cache_write,
        output_tokens=_count(field_of(native, "output_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=_count(path_of(native, "output_tokens_details", "thinking_tokens")),
        details=details,
    )
    return MappedUsage(usage, None, details)


def usage_from_catalog(response_data: Any, provider_id: str, api_flavor: str = "default") -> MappedUsage:
    """Usage of any provider genai-prices knows, from the response body as a JSON dict.

    Uses genai-prices' maintained extractors (`extract_usage`), which follow the same
    conventions as SPEC §1 (input includes cache tokens). Needs the optional
    `genai-prices` package; raises `MissingDependencyError` without it and `ValueError`
    when the body has no usage genai-prices can read.
    """
    try:
        import genai_prices
    except ImportError as exc:
        raise MissingDependencyError(
            "reading usage of providers other than OpenAI and Anthropic needs genai-prices: "
            "pip install genai-prices (or pass the counts to set_usage)"
        ) from exc
    extracted = genai_prices.extract_usage(response_data, provider_id=provider_id, api_flavor=api_flavor)
    native = extracted.usage
    details: dict[str, Any] = {}
    usage = build_usage(
        input_tokens=_count(getattr(native, "input_tokens", 0)),
        output_tokens=_count(getattr(native, "output_tokens", 0)),
        cache_read_tokens=_count(getattr(native, "cache_read_tokens", 0)),
        cache_write_tokens=_count(getattr(native, "cache_write_tokens", 0)),
        reasoning_tokens=_count(getattr(native, "output_reasoning_tokens", 0)),
        details=details,
    )
    return MappedUsage(usage, None, details)


def build_usage(
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    details: dict[str, Any] | None = None,
) -> Usage:
    """A valid `Usage`, even from inconsistent provider numbers, never silently.

    Providers have shipped usage where the parts exceed the whole. Our schema refuses
    that (and rightly: it would bill a cache read as a full input token too), so the
    whole is raised to cover its parts — never lowered, so no reported token goes
    unbilled — and the original numbers are recorded in `details["usage_anomaly"]`.
    """
    cached = cache_read_tokens + cache_write_tokens
    anomalies = []
    if cached > input_tokens:
        anomalies.append(
            f"cache_read_tokens + cache_write_tokens ({cached}) > input_tokens ({input_tokens}); "
            "input_tokens raised to match"
        )
        input_tokens = cached
    if reasoning_tokens > output_tokens:
        anomalies.append(
            f"reasoning_tokens ({reasoning_tokens}) > output_tokens ({output_tokens}); output_tokens raised to match"
        )
        output_tokens = reasoning_tokens
    if anomalies and details is not None:
        details["usage_anomaly"] = "; ".join(anomalies)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
        total_tokens=input_tokens + output_tokens,
    )


def add_usage(left: Usage, right: Usage) -> Usage:
    """The sum of two usages, part by part."""
    return build_usage(
        input_tokens=left.input_tokens + right.input_tokens,
        output_tokens=left.output_tokens + right.output_tokens,
        cache_read_tokens=left.cache_read_tokens + right.cache_read_tokens,
        cache_write_tokens=left.cache_write_tokens + right.cache_write_tokens,
        reasoning_tokens=left.reasoning_tokens + right.reasoning_tokens,
    )


def _count(value: Any) -> int:
    # Providers send null for "not applicable"; a float count (1.0) is still a count.
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    return 0


def _keep_count(details: dict[str, Any], name: str, value: Any) -> None:
    count = _count(value)
    if count:
        details[name] = count


def _decimal_or_none(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        # str() first: Decimal(0.1) would carry the float's binary error into money.
        parsed = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return parsed if parsed.is_finite() and parsed >= 0 else None
