"""`build_event`: attribution precedence, limits, and never a silent zero."""

from __future__ import annotations

from producers.call import UNATTRIBUTED, CallRecord, TrackingDefaults, build_event, tool_call
from producers.context import usage_context
from producers.usage_mapping import MappedUsage, build_usage
from schemas.event import MAX_NAME_CHARS, MAX_TEXT_CHARS, MAX_TOOL_CALLS

DEFAULTS = TrackingDefaults(source="svc", project_id="proj-default", agent_name="agent-default")


def finished_record(**fields) -> CallRecord:
    record = CallRecord(provider="openai", model="gpt-4o", **fields)
    record.apply_usage(MappedUsage(build_usage(input_tokens=10, output_tokens=5)))
    return record


def test_call_fields_override_the_context_which_overrides_defaults() -> None:
    with usage_context(project_id="proj-ctx", agent_name="agent-ctx", session_id="s-ctx", region="eu"):
        record = finished_record(agent_name="agent-call")

    event = build_event(record, DEFAULTS)

    assert (event.project_id, event.agent_name, event.session_id) == ("proj-ctx", "agent-call", "s-ctx")
    assert event.context == {"region": "eu"}
    assert event.source == "svc"


def test_defaults_apply_outside_any_context_and_unattributed_is_visible() -> None:
    assert build_event(finished_record(), DEFAULTS).project_id == "proj-default"

    bare = build_event(finished_record(), TrackingDefaults(source="svc"))

    assert (bare.project_id, bare.agent_name) == (UNATTRIBUTED, UNATTRIBUTED)


def test_the_event_id_is_drawn_once_per_call() -> None:
    record = finished_record()

    assert build_event(record, DEFAULTS).event_id == build_event(record, DEFAULTS).event_id == record.event_id


def test_a_call_without_usage_is_zero_and_says_so() -> None:
    event = build_event(CallRecord(provider="openai", model="gpt-4o"), DEFAULTS)

    assert event.usage.input_tokens == event.usage.output_tokens == 0
    assert event.error is not None and "usage not reported" in event.error


def test_texts_and_names_are_cut_to_the_schema_limits() -> None:
    record = finished_record(operation="o" * 1000)
    record.fail("e" * 10_000)
    record.tool_calls = [tool_call("t" * 500, 1.0, "x" * 5000) for _ in range(MAX_TOOL_CALLS + 7)]

    event = build_event(record, DEFAULTS)

    assert len(event.operation) == MAX_NAME_CHARS
    assert len(event.error) == MAX_TEXT_CHARS
    assert len(event.tool_calls) == MAX_TOOL_CALLS
    assert event.provider_metadata["tool_calls_total"] == MAX_TOOL_CALLS + 7


def test_an_oversized_context_is_replaced_by_a_note_not_a_lost_event() -> None:
    with usage_context(project_id="p", blob="x" * 50_000):
        record = finished_record()

    event = build_event(record, DEFAULTS)

    assert "dropped" in event.context and "bytes of JSON" in event.context["dropped"]


def test_context_values_that_are_not_json_become_strings() -> None:
    with usage_context(project_id="p", tags={"a"}):
        record = finished_record()

    assert build_event(record, DEFAULTS).context == {"tags": "{'a'}"}
