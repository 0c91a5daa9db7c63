"""Drafts and their wire bytes: what the sender publishes is what pydantic would have written.

The caller's thread no longer builds a `UsageTrackingEvent`; these tests are what allows
that. Over generated calls (any text, sizes past every limit, odd numbers, objects JSON
cannot hold), the draft must be a valid event, and `encode_draft` must give the bytes
pydantic's serializer gives for it (free-form objects: the same JSON values) — which
also validate against the shipped JSON Schema.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.call import CallRecord, TrackingDefaults, draft_event, tool_call
from producers.context import usage_context
from producers.usage_mapping import MappedUsage, build_usage
from producers.wire import EventDraft, encode_draft, format_timestamp, materialize, object_json
from schemas import JSON_SCHEMA_PATH, ToolCall, Usage, UsageTrackingEvent
from schemas.event import MAX_NAME_CHARS, MAX_OBJECT_JSON_BYTES, MAX_TOOL_CALLS

SCHEMA = jsonschema.Draft202012Validator(json.loads(JSON_SCHEMA_PATH.read_text(encoding="utf-8")))
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DEFAULTS = TrackingDefaults(source="svc", project_id="proj", agent_name="agent")


def reference_event(draft: EventDraft) -> UsageTrackingEvent:
    """The event built the pydantic way, from the draft's values (not from its bytes)."""
    return UsageTrackingEvent(
        schema_version=1,
        event_id=draft.event_id,
        timestamp=EPOCH + timedelta(microseconds=draft.finished_ns // 1000),
        source=draft.source,
        project_id=draft.project_id,
        agent_name=draft.agent_name,
        session_id=draft.session_id,
        handoff_chain=list(draft.handoff_chain),
        operation=draft.operation,
        method=draft.method,
        provider=draft.provider,
        model=draft.model,
        usage=Usage(input_tokens=draft.input_tokens, output_tokens=draft.output_tokens,
                    cache_read_tokens=draft.cache_read_tokens, cache_write_tokens=draft.cache_write_tokens,
                    reasoning_tokens=draft.reasoning_tokens, total_tokens=draft.total_tokens),
        tool_calls=[ToolCall(name=name, duration_ms=duration, error=error) for name, duration, error in draft.tool_calls],
        finish_reason=draft.finish_reason,
        duration_ms=draft.duration_ms,
        error=draft.error,
        provider_cost=draft.provider_cost,
        provider_metadata=json.loads(draft.provider_metadata_json),
        context=json.loads(draft.context_json),
    )


def assert_same_as_pydantic(draft: EventDraft) -> None:
    """Same bytes as pydantic's, but for how numbers inside the free-form objects are spelled.

    `context` and `provider_metadata` are written by `json.dumps` (on the caller's thread,
    as a snapshot): 5.6e-05 where pydantic writes 0.000056. Same JSON values, which is
    what the worker stores and compares duplicates on.
    """
    encoded = encode_draft(draft)
    reference = reference_event(draft)
    assert json.loads(encoded.json) == json.loads(reference.model_dump_json())
    without_objects = draft._replace(provider_metadata_json="{}", context_json="{}")
    assert encode_draft(without_objects).json == reference_event(without_objects).model_dump_json().encode()
    assert (encoded.project_id, encoded.event_id) == (draft.project_id, draft.event_id)
    assert encode_draft(tuple(draft)) == encoded  # as the transport queues it
    SCHEMA.validate(json.loads(encoded.json))


# -- generated calls --------------------------------------------------------------------------

names = st.one_of(st.none(), st.text(max_size=40), st.text(min_size=250, max_size=300))
json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_objects = st.dictionaries(
    st.text(max_size=10), st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3)
                                       | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8),
    max_size=5,
)
token_counts = st.integers(0, 10**12 // 4)
durations = st.one_of(st.none(), st.floats(min_value=0, max_value=1e9, allow_nan=False), st.sampled_from(
    [0.0, 1e-05, 1.5e-07, 3.2e-05, 1e-4, 12.0, 1e16, 5e-324]))
# Up to past the schema's bounds (1e15, 18 places): those must move into provider_metadata.
costs = st.one_of(st.none(), st.decimals(min_value=0, max_value=10**16, allow_nan=False, allow_infinity=False))


@st.composite
def records(draw: Any) -> CallRecord:
    record = CallRecord(
        provider=draw(names), model=draw(names), method=draw(st.sampled_from(["generate", "stream"])),
        operation=draw(names), project_id=draw(names), agent_name=draw(names), session_id=draw(names),
    )
    if draw(st.booleans()):
        cache_read, cache_write = draw(token_counts), draw(token_counts)
        record.apply_usage(MappedUsage(
            build_usage(input_tokens=draw(token_counts), output_tokens=draw(token_counts),
                        cache_read_tokens=cache_read, cache_write_tokens=cache_write,
                        reasoning_tokens=draw(token_counts), details=record.provider_metadata),
            provider_cost=draw(costs),
        ))
    if draw(st.booleans()):
        record.fail(draw(st.text(max_size=5000)))
    record.finish_reason = draw(names)
    record.tool_calls = [
        tool_call(name, duration, error)
        for name, duration, error in draw(st.lists(
            st.tuples(st.text(max_size=300), durations, st.one_of(st.none(), st.text(max_size=1100))),
            max_size=MAX_TOOL_CALLS + 3 if draw(st.booleans()) else 3))
    ]
    record.provider_metadata.update(draw(json_objects))
    record.context.update(draw(json_objects))
    record.finished_ns = draw(st.integers(1_420_070_400 * 10**9, 4_102_444_799 * 10**9))
    record.duration_ms = draw(durations)
    return record


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=records(), chain=st.lists(st.text(max_size=20), max_size=70))
def test_every_draft_is_a_valid_event_encoded_exactly_as_pydantic_would(record: CallRecord, chain: list[str]) -> None:
    with usage_context(project_id="ctx-proj", region="eu"):
        for agent in chain:
            record.attribution = record.attribution.nested(agent_name=agent)
        draft = draft_event(record, DEFAULTS)

    assert_same_as_pydantic(draft)


# -- the cases by name ------------------------------------------------------------------------


def typical_record() -> CallRecord:
    record = CallRecord(provider="openai", model="gpt-4o-mini", operation="classify", session_id="s-1")
    record.apply_usage(MappedUsage(build_usage(input_tokens=1200, output_tokens=300, cache_read_tokens=800,
                                               reasoning_tokens=20), provider_cost=Decimal("0.0100")))
    record.tool_calls = [tool_call("search_kb", 41.5), tool_call("lookup", None, "TimeoutError: slow\n")]
    record.provider_metadata["response_id"] = "chatcmpl-1"
    record.context["tags"] = ["a", "ü", "\u2028"]
    return record


def test_a_typical_call_encodes_as_pydantic_does() -> None:
    with usage_context(project_id="acme", agent_name="router"), usage_context(agent_name="triage", team="x"):
        draft = draft_event(typical_record(), DEFAULTS)

    assert_same_as_pydantic(draft)
    event = materialize(draft)
    assert (event.project_id, event.agent_name, event.handoff_chain) == ("acme", "triage", ["router", "triage"])
    assert event.context == {"team": "x", "tags": ["a", "ü", "\u2028"]}


def test_timestamps_are_utc_with_microseconds_only_when_there_are_some() -> None:
    assert format_timestamp(1_796_191_212_000_000_000) == "2026-12-02T06:00:12Z"
    assert format_timestamp(1_796_191_212_120_000_999) == "2026-12-02T06:00:12.120000Z"


def test_a_lone_surrogate_is_escaped_not_fatal() -> None:
    record = typical_record()
    record.operation = "bad \ud800 text"
    draft = draft_event(record, DEFAULTS)

    encoded = encode_draft(draft)

    assert json.loads(encoded.json)["operation"] == "bad \ud800 text"
    assert b"\\ud800" in encoded.json


def test_a_queued_draft_is_left_alone_by_the_garbage_collector() -> None:
    import gc

    with usage_context(project_id="acme", agent_name="router"), usage_context(agent_name="triage"):
        queued = tuple(draft_event(typical_record(), DEFAULTS))
    for _ in range(3):  # a pass lets go of the innermost tuples (tools), the next of what holds them
        gc.collect()

    # Only strings, numbers and tuples of them: nothing a collection would need to visit.
    assert not gc.is_tracked(queued)


def test_objects_are_snapshotted_when_the_call_is_reported() -> None:
    record = typical_record()
    draft = draft_event(record, DEFAULTS)

    record.context["tags"].append("added later")
    record.provider_metadata["late"] = True

    assert materialize(draft).context == {"tags": ["a", "ü", "\u2028"]}
    assert "late" not in materialize(draft).provider_metadata


def test_objects_json_cannot_hold_are_made_to_fit() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic

    assert json.loads(object_json({"tags": {"a"}}, "context")) == {"tags": "{'a'}"}
    assert json.loads(object_json({"x": float("nan"), "y": [float("inf")]}, "context")) == {"x": None, "y": [None]}
    assert "not JSON-serializable" in json.loads(object_json({(1, 2): "tuple key"}, "context"))["dropped"]
    assert "not JSON-serializable" in json.loads(object_json(cyclic, "context"))["dropped"]
    oversized = json.loads(object_json({"blob": "x" * MAX_OBJECT_JSON_BYTES}, "provider_metadata"))
    assert oversized["dropped"].startswith("provider_metadata was ")


@pytest.mark.parametrize("cost", [Decimal("1E+16"), Decimal("0.1234567890123456789012")])
def test_a_provider_cost_the_schema_cannot_hold_moves_to_metadata(cost: Decimal) -> None:
    record = typical_record()
    record.provider_cost = cost

    event = materialize(draft_event(record, DEFAULTS))

    assert event.provider_cost is None
    assert event.provider_metadata["provider_cost_unstorable"].startswith(str(cost))


def test_an_unknown_method_is_a_generate_call_and_long_lists_are_cut() -> None:
    record = typical_record()
    record.method = "chat"  # type: ignore[assignment]
    record.tool_calls = [tool_call(f"t{n}") for n in range(MAX_TOOL_CALLS + 5)]
    record.model = "m" * 1000

    event = materialize(draft_event(record, DEFAULTS))

    assert event.method == "generate"
    assert len(event.tool_calls) == MAX_TOOL_CALLS and event.provider_metadata["tool_calls_total"] == MAX_TOOL_CALLS + 5
    assert len(event.model) == MAX_NAME_CHARS
