"""`UsageTrackingEvent` schema version 1: the wire contract of SPEC.md §1.

Pure pydantic, no I/O. Every rule a consumer enforces lives here, so a producer in any
language can validate against the JSON Schema generated from these models.
"""

from __future__ import annotations

from datetime import datetime, timezone
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1

MAX_ID_CHARS = 128
MAX_NAME_CHARS = 256
MAX_TEXT_CHARS = 4096
MAX_HANDOFF_CHAIN = 64
MAX_TOOL_CALLS = 128
MAX_TOOL_ERROR_CHARS = 1024
# Every field is bounded, so an event's size is bounded by construction (about 200 KB at
# the very most); free-form objects are bounded so one cannot carry a prompt or a document.
MAX_OBJECT_JSON_BYTES = 16 * 1024
# Event time must be plausible: before this it is a bug (epoch zero, ms mistaken for s).
EARLIEST_TIMESTAMP = datetime(2015, 1, 1, tzinfo=timezone.utc)
LATEST_TIMESTAMP = datetime(2100, 1, 1, tzinfo=timezone.utc)

# A trillion tokens in one call is far beyond any model; the bound keeps sums inside UInt64.
MAX_TOKENS = 10**12
# Money fits ClickHouse Decimal(38, 18): 18 decimal places, and far fewer integer digits.
MAX_MONEY = Decimal(10) ** 15
MONEY_PLACES = 18

TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS, strict=True)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
# A JSON number (int or float), never a boolean or a numeric string.
Duration = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]


_DECIMAL_PATTERN = r"^\s*\+?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def _decimal_places(value: Decimal) -> int:
    """Significant digits after the point: 0.10 has 1, 1E-20 has 20, 1E+3 has 0."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) and normalized else 0


def _parse_decimal_string(value: Any) -> Decimal:
    """Accept money only as a decimal string: a JSON float has already lost cents."""
    if isinstance(value, Decimal):
        parsed = value
    elif isinstance(value, str):
        # Python's Decimal also reads "1_000", "NaN" and "-0"; the wire format does not.
        if not re.match(_DECIMAL_PATTERN, value):
            raise ValueError(f"not a plain non-negative decimal string: {value!r}")
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:  # e.g. an exponent beyond what Decimal can hold
            raise ValueError(f"not a representable decimal number: {value[:40]!r}") from None
        exponent = parsed.as_tuple().exponent
        if not isinstance(exponent, int) or abs(exponent) > 60:  # "0E-999999999" is zero, but unprintable
            raise ValueError(f"exponent out of range: {value[:40]!r}")
    else:
        raise ValueError("must be a decimal string such as \"0.0123\", not a JSON number")
    if not parsed.is_finite():
        raise ValueError("must be a finite decimal")
    if parsed < 0:
        raise ValueError("must not be negative")
    if parsed >= MAX_MONEY:
        raise ValueError(f"must be below {MAX_MONEY:f} USD")
    if _decimal_places(parsed) > MONEY_PLACES:
        raise ValueError(f"has more than {MONEY_PLACES} decimal places; it could not be stored exactly")
    return parsed


DecimalString = Annotated[
    Decimal,
    BeforeValidator(_parse_decimal_string),
    PlainSerializer(lambda d: format(d, "f"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": _DECIMAL_PATTERN}),
]


def _require_int_not_bool(value: Any) -> Any:
    if isinstance(value, (bool, float)):
        raise ValueError(f"must be the integer 1, not {type(value).__name__} {value!r}")
    return value


def _require_rfc3339_string(value: Any) -> Any:
    # JSON numbers would be read as Unix seconds or milliseconds: ambiguous, so refused.
    if isinstance(value, (int, float)):
        raise ValueError("must be an RFC 3339 string with offset, e.g. 2026-11-22T10:00:00Z, not a number")
    return value


def _json_size_upper_bound(value: Any, budget: int) -> int:
    """A cheap upper bound of `value`'s JSON size; stops counting once past `budget`."""
    if isinstance(value, str):
        return 6 * len(value) + 2  # every character escaped as \uXXXX, plus quotes
    if value is None or isinstance(value, (bool, int, float)):
        return 32
    if isinstance(value, dict):
        total = 2
        for key, item in value.items():
            total += _json_size_upper_bound(str(key), budget) + 1 + _json_size_upper_bound(item, budget - total) + 1
            if total > budget:
                break
        return total
    if isinstance(value, (list, tuple)):
        total = 2
        for item in value:
            total += _json_size_upper_bound(item, budget - total) + 1
            if total > budget:
                break
        return total
    return budget + 1  # unknown type: measure it exactly


def _bounded_object(value: dict[str, Any], field_name: str) -> dict[str, Any]:
    if _json_size_upper_bound(value, MAX_OBJECT_JSON_BYTES) <= MAX_OBJECT_JSON_BYTES:
        return value  # small for sure: skip the exact (slower) measurement
    import json

    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field_name} must be JSON-serializable: {exc}") from None
    if size > MAX_OBJECT_JSON_BYTES:
        raise ValueError(f"{field_name} is {size} bytes of JSON; at most {MAX_OBJECT_JSON_BYTES} allowed")
    return value


class _Strict(BaseModel):
    # Unknown fields are rejected: a misspelled field must never become a silent default.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Usage(_Strict):
    """Token counts of one call. Inputs include cache tokens; outputs include reasoning."""

    input_tokens: TokenCount = Field(description="All prompt tokens, including cache reads and writes.")
    output_tokens: TokenCount = Field(description="All completion tokens, including reasoning tokens.")
    cache_read_tokens: TokenCount = Field(0, description="Part of input served from the prompt cache.")
    cache_write_tokens: TokenCount = Field(0, description="Part of input written to the prompt cache.")
    reasoning_tokens: TokenCount = Field(0, description="Part of output spent on reasoning.")
    total_tokens: TokenCount | None = Field(None, description="If present, must equal input + output.")

    @model_validator(mode="after")
    def _parts_fit_in_totals(self) -> Usage:
        cached = self.cache_read_tokens + self.cache_write_tokens
        if cached > self.input_tokens:
            raise ValueError(
                f"cache_read_tokens + cache_write_tokens ({cached}) exceeds input_tokens "
                f"({self.input_tokens}); input_tokens must include cached tokens"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                f"reasoning_tokens ({self.reasoning_tokens}) exceeds output_tokens "
                f"({self.output_tokens}); output_tokens must include reasoning tokens"
            )
        if self.total_tokens is not None and self.total_tokens != self.input_tokens + self.output_tokens:
            raise ValueError(
                f"total_tokens ({self.total_tokens}) != input_tokens + output_tokens "
                f"({self.input_tokens + self.output_tokens})"
            )
        return self


class ToolCall(_Strict):
    """One tool the call invoked."""

    name: Name
    duration_ms: Duration | None = None
    error: Annotated[str, Field(max_length=MAX_TOOL_ERROR_CHARS)] | None = None


class UsageTrackingEvent(_Strict):
    """One LLM call, as published to Kafka (SPEC.md §1, schema version 1)."""

    schema_version: Annotated[Literal[1], BeforeValidator(_require_int_not_bool)] = Field(
        description="Wire version."
    )
    event_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)] = Field(
        description="Idempotency key (a UUID): the same id is the same event and is billed once."
    )
    timestamp: Annotated[AwareDatetime, BeforeValidator(_require_rfc3339_string)] = Field(
        description="RFC 3339 with offset: when the call finished. Prices and windows use it."
    )
    source: Name = Field(description="The emitting service.")
    project_id: Name = Field(description="Billing unit; also the Kafka message key.")
    agent_name: Name = Field(description="Agent that made the call.")
    session_id: Name | None = Field(None, description="Conversation or session.")
    handoff_chain: Annotated[list[Name], Field(max_length=MAX_HANDOFF_CHAIN)] = Field(
        default_factory=list, description="Agents of a multi-agent hand-off, the current one last."
    )
    operation: Name | None = Field(None, description="What the call was for.")
    method: Literal["generate", "stream"]
    provider: Name = Field(description="openai, anthropic, google, ...")
    model: Name = Field(description="Model as the provider names it.")
    usage: Usage
    tool_calls: Annotated[list[ToolCall], Field(max_length=MAX_TOOL_CALLS)] = Field(default_factory=list)
    finish_reason: Name | None = None
    duration_ms: Duration | None = None
    error: Text | None = Field(None, description="A failed call is still an event.")
    provider_cost: DecimalString | None = Field(
        None, description="Cost the provider itself reported, as a decimal string (USD)."
    )
    provider_metadata: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(
        default_factory=dict, description="Free-form caller context; never prompt or completion text."
    )

    @field_validator("timestamp")
    @classmethod
    def _plausible_time(cls, value: datetime) -> datetime:
        if not EARLIEST_TIMESTAMP <= value < LATEST_TIMESTAMP:
            raise ValueError(
                f"timestamp {value.isoformat()} is outside {EARLIEST_TIMESTAMP.year}..{LATEST_TIMESTAMP.year}"
            )
        return value

    @field_validator("provider_metadata", "context")
    @classmethod
    def _bounded(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        return _bounded_object(value, info.field_name)

    def wire_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data, exactly as it goes on the wire."""
        return self.model_dump(mode="json", exclude_none=False)
