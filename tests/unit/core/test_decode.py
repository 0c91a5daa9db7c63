"""`decode_message`: one event or a batch in, valid events and reasoned rejections out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from schemas import UsageTrackingEvent
from stream_app.core.decode import (
    MAX_BATCH_EVENTS,
    MAX_MESSAGE_BYTES,
    DecodeResult,
    MessageOrigin,
    RejectReason,
    decode_message,
    describe_validation_error,
)
from tests.factories import OMIT, make_event_dict

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
SKEW = timedelta(seconds=300)
PROJECT = "proj-acme"
ORIGIN = MessageOrigin("llm.usage.events", 3, 41_017, PROJECT.encode())


def wire(**overrides) -> dict:
    """An event dict stamped a little before NOW (the factory's default is the real clock)."""
    overrides.setdefault("timestamp", NOW - timedelta(seconds=30))
    overrides.setdefault("project_id", PROJECT)
    return make_event_dict(**overrides)


def encode(value) -> bytes:
    return json.dumps(value).encode()


def decode(value: bytes | None, origin: MessageOrigin = ORIGIN, *, now: datetime = NOW) -> DecodeResult:
    return decode_message(value, origin, now=now, max_future_skew=SKEW)


def only_rejection(result: DecodeResult):
    assert result.events == []
    (rejection,) = result.rejections
    return rejection


# --- the two message forms --------------------------------------------------------------


def test_single_event_object():
    event = wire(provider_cost="0.25")
    raw = encode(event)

    result = decode(raw)

    assert result.rejections == []
    (decoded,) = result.events
    assert decoded.event == UsageTrackingEvent.model_validate(event)
    assert decoded.event.event_id == event["event_id"]
    assert decoded.index is None
    assert decoded.origin is ORIGIN


def test_batch_array_keeps_order_and_positions():
    events = [wire() for _ in range(3)]

    result = decode(encode(events))

    assert result.rejections == []
    assert [d.event.event_id for d in result.events] == [e["event_id"] for e in events]
    assert [d.index for d in result.events] == [0, 1, 2]
    assert all(d.origin is ORIGIN for d in result.events)


def test_bad_event_in_batch_is_rejected_alone_with_its_index():
    good_first, good_last = wire(), wire()
    bad = wire(usage={"input_tokens": OMIT, "input_token": 1200})
    batch = [good_first, bad, good_last]

    result = decode(encode(batch))

    assert [d.event.event_id for d in result.events] == [good_first["event_id"], good_last["event_id"]]
    assert [d.index for d in result.events] == [0, 2]
    (rejection,) = result.rejections
    assert rejection.reason == RejectReason.INVALID_EVENT == "invalid_event"
    assert rejection.index == 1
    assert rejection.origin is ORIGIN
    assert rejection.event_id == bad["event_id"]
    assert rejection.project_id == PROJECT
    assert "usage.input_token" in rejection.detail
    assert "usage.input_tokens" in rejection.detail
    assert json.loads(rejection.raw) == bad  # the element itself, not the whole batch


def test_several_bad_events_in_a_batch_are_each_rejected():
    batch = [wire(method="batch"), wire(), 7, wire(usage={"reasoning_tokens": 10_000})]

    result = decode(encode(batch))

    assert [d.index for d in result.events] == [1]
    assert [(r.index, r.reason) for r in result.rejections] == [
        (0, "invalid_event"),
        (2, "not_an_event"),
        (3, "invalid_event"),
    ]


def test_batch_of_exactly_the_limit_is_accepted():
    event = wire()

    result = decode(encode([event] * MAX_BATCH_EVENTS))

    assert len(result.events) == 1000
    assert result.rejections == []


def test_batch_over_the_limit_is_rejected_whole():
    raw = encode([wire()] * (MAX_BATCH_EVENTS + 1))

    rejection = only_rejection(decode(raw))

    assert rejection.reason == "batch_too_large"
    assert "1001" in rejection.detail and "1000" in rejection.detail
    assert rejection.index is None
    assert rejection.raw == raw


def test_empty_batch_is_rejected():
    rejection = only_rejection(decode(b"[]"))

    assert rejection.reason == "empty_batch"
    assert rejection.raw == b"[]"


# --- messages that are not events at all ---------------------------------------------


def test_broken_json_is_rejected_with_its_bytes():
    raw = b'{"schema_version": 1, "event_id": '

    rejection = only_rejection(decode(raw))

    assert rejection.reason == "invalid_json"
    assert rejection.raw == raw
    assert rejection.index is None
    assert rejection.origin is ORIGIN


def test_invalid_utf8_is_rejected():
    raw = encode(wire(agent_name="AGENT")).replace(b"AGENT", b"\xff\xfe\xfa")

    rejection = only_rejection(decode(raw))

    assert rejection.reason == "invalid_utf8"
    assert rejection.raw == raw


@pytest.mark.parametrize("raw", [b"42", b'"an event"', b"null", b"true"])
def test_json_that_is_not_an_object_or_array_is_rejected(raw):
    rejection = only_rejection(decode(raw))

    assert rejection.reason == "not_an_event"
    assert rejection.raw == raw


@pytest.mark.parametrize("value", [b"", None, b"  \n\t "])
def test_empty_message_is_rejected(value):
    rejection = only_rejection(decode(value))

    assert rejection.reason == "empty_message"
    assert rejection.index is None


def test_oversized_message_is_rejected_without_parsing():
    raw = b"[" + b" " * MAX_MESSAGE_BYTES + b"]"

    rejection = only_rejection(decode(raw))

    assert rejection.reason == "message_too_large"
    assert len(rejection.raw) == 64 * 1024  # a bounded prefix goes to the dead letter
    assert rejection.raw == raw[: 64 * 1024]


def _largest_valid_event() -> dict:
    """Every bounded field near its limit: about 170 KB of JSON, still a valid event."""
    return wire(
        tool_calls=[{"name": "t" * 256, "error": "x" * 1024, "duration_ms": 1.0} for _ in range(128)],
        context={"b": "c" * (16 * 1024 - 8)},
        provider_metadata={"b": "m" * (16 * 1024 - 8)},
        handoff_chain=["a" * 256] * 64,
    )


def test_largest_valid_event_is_accepted_alone_and_in_a_batch():
    big = _largest_valid_event()
    assert len(encode(big)) > 150_000

    assert [d.index for d in decode(encode(big)).events] == [None]
    assert [d.index for d in decode(encode([wire(), big])).events] == [0, 1]


def test_over_bounded_event_inside_a_batch_is_rejected_alone():
    small = wire()
    big = wire(tool_calls=[{"name": "t", "error": "x" * 4000} for _ in range(20)])

    result = decode(encode([small, big]))

    assert [d.event.event_id for d in result.events] == [small["event_id"]]
    (rejection,) = result.rejections
    assert (rejection.reason, rejection.index, rejection.event_id) == ("invalid_event", 1, big["event_id"])
    assert "tool_calls.0.error" in rejection.detail


@pytest.mark.parametrize(
    "overrides",
    [
        {"tool_calls": [{"name": "t", "error": "x" * 4000} for _ in range(20)]},  # invalid and large
        {"tool_calls": [{"name": "t"}] * 129},  # one tool call too many
        {"context": {"b": "c" * (16 * 1024 - 8)}, "provider_metadata": {"b": "m" * (16 * 1024 - 8)}},  # valid, large
    ],
    ids=["invalid-large", "too-many-tool-calls", "valid-large"],
)
def test_same_event_gets_the_same_verdict_alone_or_in_a_batch(overrides):
    event = wire(**overrides)

    alone = decode(encode(event))
    batched = decode(encode([event]))

    assert [r.reason for r in alone.rejections] == [r.reason for r in batched.rejections]
    assert len(alone.events) == len(batched.events)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_message_in_another_unicode_encoding_is_rejected(encoding):
    # SPEC §1: the value is UTF-8. json.loads(bytes) alone would sniff UTF-16/32 and accept it.
    raw = json.dumps(wire()).encode(encoding)

    rejection = only_rejection(decode(raw))

    assert rejection.reason == "invalid_utf8"
    assert rejection.raw == raw


def test_utf16_without_bom_is_not_read_as_json():
    # ASCII in UTF-16-LE is valid UTF-8 full of NUL bytes: not JSON either way.
    raw = json.dumps(wire()).encode("utf-16-le")

    assert only_rejection(decode(raw)).reason in {"invalid_utf8", "invalid_json"}


@pytest.mark.parametrize("constant", [float("nan"), float("inf"), float("-inf")])
def test_non_json_number_literals_are_rejected(constant):
    # json.dumps writes NaN/Infinity, json.loads reads them: neither is JSON (RFC 8259).
    raw = encode(wire(context={"x": constant}))

    assert only_rejection(decode(raw)).reason == "invalid_json"


# --- per-event rules -------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 0, 99])
def test_other_integer_schema_version_is_unsupported(version):
    rejection = only_rejection(decode(encode(wire(schema_version=version))))

    assert rejection.reason == "unsupported_schema_version"
    assert f"schema_version is {version}" in rejection.detail


@pytest.mark.parametrize("version", ["1", None, OMIT, 1.5])
def test_schema_version_that_is_not_an_integer_is_invalid(version):
    rejection = only_rejection(decode(encode(wire(schema_version=version))))

    assert rejection.reason == "invalid_event"
    assert "schema_version" in rejection.detail


def test_single_event_rejection_keeps_the_original_bytes():
    raw = b'{"schema_version": 1,   "event_id": "e-1", "project_id": "proj-acme"}'

    rejection = only_rejection(decode(raw))

    assert rejection.reason == "invalid_event"
    assert rejection.raw == raw  # byte for byte, whitespace included
    assert (rejection.event_id, rejection.project_id) == ("e-1", "proj-acme")


def test_future_timestamp_beyond_skew_is_rejected():
    event = wire(timestamp=NOW + SKEW + timedelta(seconds=1))

    rejection = only_rejection(decode(encode(event)))

    assert rejection.reason == "future_timestamp"
    assert rejection.event_id == event["event_id"]
    assert "300 s" in rejection.detail


def test_future_timestamp_within_skew_is_accepted():
    result = decode(encode(wire(timestamp=NOW + SKEW)))

    assert len(result.events) == 1
    assert result.rejections == []


def test_future_check_uses_the_instant_not_the_wall_clock_digits():
    # 13:04:00+01:00 is 12:04:00 UTC: within 300 s of NOW although "13:04" looks an hour ahead.
    assert len(decode(encode(wire(timestamp="2026-11-22T13:04:00+01:00"))).events) == 1


def test_old_events_are_accepted():
    # Late data is normal: it lands in its (old) window, it is not rejected.
    assert len(decode(encode(wire(timestamp=NOW - timedelta(days=400)))).events) == 1


def test_project_id_must_match_the_message_key():
    event = wire(project_id="proj-other")

    rejection = only_rejection(decode(encode(event)))

    assert rejection.reason == "project_key_mismatch"
    assert "proj-other" in rejection.detail and "proj-acme" in rejection.detail
    assert rejection.project_id == "proj-other"


def test_key_mismatch_in_a_batch_rejects_only_that_event():
    batch = [wire(), wire(project_id="proj-other"), wire()]

    result = decode(encode(batch))

    assert [d.index for d in result.events] == [0, 2]
    assert [(r.index, r.reason) for r in result.rejections] == [(1, "project_key_mismatch")]


def test_message_without_key_is_not_checked_against_one():
    origin = MessageOrigin("llm.usage.events", 0, 7, None)

    result = decode(encode(wire(project_id="proj-other")), origin)

    assert [d.event.project_id for d in result.events] == ["proj-other"]
    assert result.events[0].origin is origin


def test_key_that_is_not_utf8_cannot_match_the_project():
    origin = MessageOrigin("llm.usage.events", 0, 7, b"\xffproj-acme")

    rejection = only_rejection(decode(encode(wire()), origin))

    assert rejection.reason == "project_key_mismatch"


def test_reject_reason_codes_are_stable():
    # Dead letters and metrics are grouped by these strings: renaming one is a contract change.
    codes = {name: value for name, value in vars(RejectReason).items() if name.isupper()}

    assert codes == {
        "EMPTY_MESSAGE": "empty_message",
        "MESSAGE_TOO_LARGE": "message_too_large",
        "INVALID_UTF8": "invalid_utf8",
        "INVALID_JSON": "invalid_json",
        "NOT_AN_EVENT": "not_an_event",
        "EMPTY_BATCH": "empty_batch",
        "BATCH_TOO_LARGE": "batch_too_large",
        "UNSUPPORTED_SCHEMA_VERSION": "unsupported_schema_version",
        "INVALID_EVENT": "invalid_event",
        "FUTURE_TIMESTAMP": "future_timestamp",
        "PROJECT_KEY_MISMATCH": "project_key_mismatch",
        "PROMPT_TEXT_IN_CONTEXT": "prompt_text_in_context",
        "CONFLICTING_DUPLICATE": "conflicting_duplicate",
        "SINK_REJECTED": "sink_rejected",
    }


def test_rejection_of_a_non_dict_element_has_no_ids():
    result = decode(encode([wire(), ["nested"]]))

    (rejection,) = result.rejections
    assert (rejection.event_id, rejection.project_id, rejection.index) == (None, None, 1)
    assert json.loads(rejection.raw) == ["nested"]


def test_describe_validation_error_names_each_field_path():
    try:
        UsageTrackingEvent.model_validate(wire(method="batch", usage={"output_tokens": -1}))
    except ValueError as exc:
        text = describe_validation_error(exc)
    else:
        pytest.fail("event should be invalid")

    parts = text.split("; ")
    assert len(parts) == 2
    assert any(p.startswith("method: ") for p in parts)
    assert any(p.startswith("usage.output_tokens: ") for p in parts)


@pytest.mark.parametrize(
    "raw",
    [b"\x00", b"[", b"[[[]]]", b"{}", b'[{}, {"schema_version": 1}]', b'{"schema_version": 1, "usage": []}', b"\xef\xbb\xbf"],
)
def test_never_raises(raw):
    result = decode(raw)

    assert result.events == []
    assert result.rejections  # every input is accounted for


def test_original_event_bytes_of_a_batch_element_and_of_a_single_event():
    from stream_app.core.decode import original_event_bytes

    batch = b'[ {"a": 1} ,\n {"b": [2, "]"]} ]'

    assert original_event_bytes(batch, 1) == b'{"b": [2, "]"]}'
    assert original_event_bytes(b'{"a":1}', None) == b'{"a":1}'
