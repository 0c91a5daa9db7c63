"""`UsageTrackingEvent` v1: every rule of SPEC.md §1, checked on the wire form (JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas import UsageTrackingEvent
from schemas.event import MAX_ID_CHARS, MAX_OBJECT_JSON_BYTES
from tests.factories import OMIT, make_event_dict


def validate(wire: dict) -> UsageTrackingEvent:
    """Validate exactly as a consumer does: from JSON text, not from Python objects."""
    return UsageTrackingEvent.model_validate_json(json.dumps(wire))


def error_locations(wire: dict) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        validate(wire)
    return {".".join(str(part) for part in err["loc"]) for err in caught.value.errors()}


def test_factory_default_event_is_valid():
    event = validate(make_event_dict())

    assert event.usage.input_tokens == 1200
    assert event.usage.cache_read_tokens == 800


# --- usage: parts must fit inside the totals ------------------------------------------


def test_cache_read_plus_cache_write_may_equal_input():
    event = validate(make_event_dict(usage={"input_tokens": 100, "cache_read_tokens": 60, "cache_write_tokens": 40}))

    assert (event.usage.cache_read_tokens, event.usage.cache_write_tokens) == (60, 40)


def test_cache_read_plus_cache_write_above_input_is_rejected():
    wire = make_event_dict(usage={"input_tokens": 100, "cache_read_tokens": 60, "cache_write_tokens": 41})

    with pytest.raises(ValidationError, match=r"cache_read_tokens \+ cache_write_tokens \(101\) exceeds input_tokens \(100\)"):
        validate(wire)


@pytest.mark.parametrize("field", ["cache_read_tokens", "cache_write_tokens"])
def test_either_cache_count_alone_above_input_is_rejected(field):
    wire = make_event_dict(usage={"input_tokens": 10, "cache_read_tokens": 0, field: 11})

    with pytest.raises(ValidationError, match="exceeds input_tokens"):
        validate(wire)


def test_reasoning_may_equal_output():
    event = validate(make_event_dict(usage={"output_tokens": 50, "reasoning_tokens": 50}))

    assert event.usage.reasoning_tokens == 50


def test_reasoning_above_output_is_rejected():
    wire = make_event_dict(usage={"output_tokens": 50, "reasoning_tokens": 51})

    with pytest.raises(ValidationError, match=r"reasoning_tokens \(51\) exceeds output_tokens \(50\)"):
        validate(wire)


def test_total_tokens_equal_to_input_plus_output_is_accepted():
    event = validate(make_event_dict(usage={"input_tokens": 1000, "output_tokens": 234, "total_tokens": 1234}))

    assert event.usage.total_tokens == 1234


@pytest.mark.parametrize("total", [1233, 1235, 0, 1000])
def test_total_tokens_different_from_input_plus_output_is_rejected(total):
    wire = make_event_dict(
        usage={"input_tokens": 1000, "output_tokens": 234, "cache_read_tokens": 0, "total_tokens": total}
    )

    with pytest.raises(ValidationError, match=rf"total_tokens \({total}\) != input_tokens \+ output_tokens \(1234\)"):
        validate(wire)


def test_total_tokens_is_optional():
    event = validate(make_event_dict(usage={"total_tokens": OMIT}))

    assert event.usage.total_tokens is None


def test_optional_usage_parts_default_to_zero_only_when_absent():
    wire = make_event_dict(
        usage={"cache_read_tokens": OMIT, "cache_write_tokens": OMIT, "reasoning_tokens": OMIT}
    )

    usage = validate(wire).usage

    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (0, 0, 0)


# --- token counts are non-negative JSON integers, nothing else --------------------------

TOKEN_FIELDS = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "total_tokens"]


@pytest.mark.parametrize("field", TOKEN_FIELDS)
def test_negative_token_count_is_rejected(field):
    assert f"usage.{field}" in error_locations(make_event_dict(usage={field: -1}))


@pytest.mark.parametrize("field", TOKEN_FIELDS)
@pytest.mark.parametrize("bad", [5.0, 5.5, "5", True, [5]], ids=["float", "fraction", "string", "bool", "list"])
def test_non_integer_token_count_is_rejected(field, bad):
    assert f"usage.{field}" in error_locations(make_event_dict(usage={field: bad}))


@pytest.mark.parametrize("field", TOKEN_FIELDS[:-1])
def test_null_token_count_is_rejected(field):
    # Only total_tokens is nullable; a null count must not become 0.
    assert f"usage.{field}" in error_locations(make_event_dict(usage={field: None}))


@pytest.mark.parametrize("field", ["input_tokens", "output_tokens"])
def test_missing_required_token_count_is_rejected(field):
    assert f"usage.{field}" in error_locations(make_event_dict(usage={field: OMIT}))


def test_missing_usage_is_rejected():
    assert "usage" in error_locations(make_event_dict(usage=OMIT))


# --- a misspelled or unknown field is never a silent zero -------------------------------


def test_misspelled_required_usage_field_is_rejected_not_zero():
    wire = make_event_dict(usage={"input_tokens": OMIT, "input_token": 1200})

    locations = error_locations(wire)

    assert "usage.input_token" in locations  # named as unknown
    assert "usage.input_tokens" in locations  # and the real one is missing


@pytest.mark.parametrize("misspelled", ["cache_read_token", "cached_tokens", "reasoning", "Input_tokens"])
def test_misspelled_optional_usage_field_is_rejected_not_zero(misspelled):
    # The optional counts default to 0: a typo here would otherwise bill cached tokens as
    # uncached, silently.
    wire = make_event_dict(usage={"cache_read_tokens": OMIT, misspelled: 800})

    assert f"usage.{misspelled}" in error_locations(wire)


def test_unknown_top_level_field_is_rejected():
    assert "cost" in error_locations(make_event_dict(cost="0.01"))


def test_unknown_tool_call_field_is_rejected():
    wire = make_event_dict(tool_calls=[{"name": "search", "duration": 3}])

    assert "tool_calls.0.duration" in error_locations(wire)


# --- required fields and their bounds -------------------------------------------------

REQUIRED = ["schema_version", "event_id", "timestamp", "source", "project_id", "agent_name", "method", "provider", "model"]


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_required_field_is_rejected(field):
    assert field in error_locations(make_event_dict(**{field: OMIT}))


@pytest.mark.parametrize("field", ["event_id", "source", "project_id", "agent_name", "provider", "model"])
def test_empty_required_string_is_rejected(field):
    assert field in error_locations(make_event_dict(**{field: ""}))


def test_event_id_length_limit():
    assert validate(make_event_dict(event_id="e" * MAX_ID_CHARS)).event_id == "e" * 128
    assert "event_id" in error_locations(make_event_dict(event_id="e" * (MAX_ID_CHARS + 1)))


@pytest.mark.parametrize("version", [0, 2, "1"])
def test_schema_version_other_than_1_is_rejected(version):
    assert "schema_version" in error_locations(make_event_dict(schema_version=version))


def test_schema_version_true_is_rejected():
    # True == 1 in Python; the JSON Schema ({"const": 1, "type": "integer"}) rejects it too.
    assert "schema_version" in error_locations(make_event_dict(schema_version=True))


@pytest.mark.parametrize("method", ["generate", "stream"])
def test_method_accepts_generate_and_stream(method):
    assert validate(make_event_dict(method=method)).method == method


@pytest.mark.parametrize("method", ["Generate", "STREAM", "batch", "", None])
def test_method_is_a_closed_literal(method):
    assert "method" in error_locations(make_event_dict(method=method))


# --- timestamps ------------------------------------------------------------------------


def test_timestamp_with_offset_keeps_the_instant():
    event = validate(make_event_dict(timestamp="2026-11-22T13:30:00.250+01:00"))

    assert event.timestamp == datetime(2026, 11, 22, 12, 30, 0, 250_000, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(hours=1)


def test_timestamp_with_z_is_utc():
    assert validate(make_event_dict(timestamp="2026-11-22T12:00:00Z")).timestamp == datetime(
        2026, 11, 22, 12, tzinfo=UTC
    )


@pytest.mark.parametrize("naive", ["2026-11-22T12:00:00", "2026-11-22 12:00:00", "2026-11-22"])
def test_timestamp_without_offset_is_rejected(naive):
    assert "timestamp" in error_locations(make_event_dict(timestamp=naive))


@pytest.mark.parametrize("implausible", ["1970-01-01T00:00:00Z", "2014-12-31T23:59:59Z", "2100-01-01T00:00:00Z"])
def test_implausible_timestamp_is_rejected(implausible):
    assert "timestamp" in error_locations(make_event_dict(timestamp=implausible))


def test_earliest_plausible_timestamp_is_accepted():
    event = validate(make_event_dict(timestamp=datetime(2015, 1, 1, tzinfo=timezone.utc)))

    assert event.timestamp.year == 2015


@pytest.mark.parametrize("number", [1795348800, 1795348800000, 1795348800.5])
def test_numeric_timestamp_is_rejected(number):
    # Lax pydantic would read Unix seconds, or milliseconds above 2e10: ambiguous, refused.
    assert "timestamp" in error_locations(make_event_dict(timestamp=number))


# --- optional fields -----------------------------------------------------------------


def test_session_id_may_be_null_or_absent():
    assert validate(make_event_dict(session_id=None)).session_id is None
    assert validate(make_event_dict(session_id=OMIT)).session_id is None


def test_empty_session_id_is_rejected():
    # "" would group as "no session" in the tables: null is the way to say that.
    assert "session_id" in error_locations(make_event_dict(session_id=""))


def test_failed_call_is_still_an_event():
    event = validate(make_event_dict(error="rate limited", finish_reason=None))

    assert event.error == "rate limited"
    assert event.usage.input_tokens == 1200


@pytest.mark.parametrize("bad", [-1, -0.5, "fast"])
def test_duration_must_be_a_non_negative_number(bad):
    assert "duration_ms" in error_locations(make_event_dict(duration_ms=bad))


# --- money: provider_cost is a decimal string, kept exact --------------------------------


def test_provider_cost_decimal_string_is_kept_exact():
    # 33 significant digits, 18 after the point: more than a float carries, all of it kept.
    event = validate(make_event_dict(provider_cost="123456789012345.123456789012345678"))

    assert event.provider_cost == Decimal("123456789012345.123456789012345678")
    assert isinstance(event.provider_cost, Decimal)


def test_provider_cost_goes_back_on_the_wire_as_the_same_string():
    event = validate(make_event_dict(provider_cost="0.0123"))

    assert event.wire_dict()["provider_cost"] == "0.0123"
    assert json.loads(event.model_dump_json())["provider_cost"] == "0.0123"


def test_provider_cost_in_exponent_notation_is_written_without_exponent():
    event = validate(make_event_dict(provider_cost="7.5E-8"))

    assert event.provider_cost == Decimal("0.000000075")
    assert event.wire_dict()["provider_cost"] == "0.000000075"


@pytest.mark.parametrize("number", [0.1, 0.0123, 1, 0], ids=["float", "small-float", "int", "zero"])
def test_provider_cost_as_json_number_is_rejected(number):
    assert "provider_cost" in error_locations(make_event_dict(provider_cost=number))


@pytest.mark.parametrize("bad", ["abc", "", "NaN", "Infinity", "-0.01", "-0", "1,5", "1_000", "0x10"])
def test_provider_cost_must_be_a_finite_non_negative_decimal(bad):
    assert "provider_cost" in error_locations(make_event_dict(provider_cost=bad))


def test_provider_cost_may_be_null():
    assert validate(make_event_dict(provider_cost=None)).provider_cost is None


# --- free-form objects are bounded -----------------------------------------------------

# {"b":""} is 8 bytes of compact JSON; the rest is the string's payload.
_ENVELOPE = len('{"b":""}')


@pytest.mark.parametrize("field", ["context", "provider_metadata"])
def test_object_at_the_size_limit_is_accepted(field):
    wire = make_event_dict(**{field: {"b": "x" * (MAX_OBJECT_JSON_BYTES - _ENVELOPE)}})

    assert len(getattr(validate(wire), field)["b"]) == 16 * 1024 - 8


@pytest.mark.parametrize("field", ["context", "provider_metadata"])
def test_object_over_the_size_limit_is_rejected(field):
    wire = make_event_dict(**{field: {"b": "x" * (MAX_OBJECT_JSON_BYTES - _ENVELOPE + 1)}})

    with pytest.raises(ValidationError, match=rf"{field} is 16385 bytes of JSON; at most 16384"):
        validate(wire)


def test_object_size_counts_utf8_bytes_not_characters():
    # "é" is 2 bytes in UTF-8: 8189 of them are 16378 bytes, 16386 with the envelope,
    # though only 8197 characters.
    wire = make_event_dict(context={"b": "é" * 8189})

    assert "context" in error_locations(wire)


def test_context_must_be_an_object():
    assert "context" in error_locations(make_event_dict(context=["not", "an", "object"]))


# --- round trip -------------------------------------------------------------------------


def test_wire_dict_round_trips():
    event = validate(make_event_dict(provider_cost="0.5", session_id=None, context={"city": "Zürich"}))

    assert UsageTrackingEvent.model_validate_json(json.dumps(event.wire_dict())) == event
