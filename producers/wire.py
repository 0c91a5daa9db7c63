"""A tracked call's event as the caller's thread hands it over, and its wire JSON.

The caller's thread only snapshots what it knows into an `EventDraft` (names already cut
to the schema's limits, free-form objects already JSON text): a few microseconds, no
pydantic, no system call. A draft holds only strings, numbers and tuples of them, so
the queue can hand it on as a plain tuple that the garbage collector stops tracking:
thousands of queued events then add nothing to a collection pause. The background sender turns drafts into wire bytes with
`encode_draft` — the bytes `UsageTrackingEvent.model_dump_json()` gives for the event
(tests/unit/producers/test_wire.py checks it over generated calls, against the model and
the shipped JSON Schema) — off the caller's path.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from schemas import ToolCall, UsageTrackingEvent
from schemas.event import MAX_NAME_CHARS, MAX_OBJECT_JSON_BYTES

EMPTY_OBJECT_JSON = "{}"


class EventDraft(NamedTuple):
    """Everything an event says, frozen when its call was reported; values already bounded.

    Fields are in wire order; `encode_draft` reads them by position, so a plain tuple
    of the same values (what the transport queues) encodes the same.
    """

    event_id: str
    finished_ns: int
    source: str
    project_id: str
    agent_name: str
    session_id: str | None
    handoff_chain: tuple[str, ...]
    operation: str | None
    method: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int | None
    tool_calls: tuple[tuple[str, float | None, str | None], ...]  # (name, duration_ms, error)
    finish_reason: str | None
    duration_ms: float | None
    error: str | None
    provider_cost: Decimal | None
    provider_metadata_json: str
    context_json: str


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event's wire JSON and the two fields batching needs, read without parsing it."""

    project_id: str
    event_id: str
    json: bytes

    @classmethod
    def of(cls, event: UsageTrackingEvent) -> EncodedEvent:
        """A validated event, encoded."""
        return cls(event.project_id, event.event_id, event.model_dump_json().encode())


def encode_draft(draft: EventDraft | tuple[Any, ...]) -> EncodedEvent:
    """The draft's wire JSON: compact UTF-8, fields in schema order, like pydantic's."""
    text = _draft_json(draft)
    try:
        data = text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (from a caller's string) cannot be UTF-8: escape it as \\udXXX.
        data = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=True).encode()
    return EncodedEvent(draft[_PROJECT_ID], draft[_EVENT_ID], data)


def draft_tool(tool: ToolCall) -> tuple[str, float | None, str | None]:
    """A tool call as a draft holds it."""
    return (tool.name, tool.duration_ms, tool.error)


def materialize(draft: EventDraft | tuple[Any, ...]) -> UsageTrackingEvent:
    """The draft as a validated `UsageTrackingEvent` (for handlers and listeners)."""
    return UsageTrackingEvent.model_validate_json(encode_draft(draft).json)


def object_json(value: dict[str, Any], field_name: str) -> str:
    """`value` as compact JSON text within the schema's size bound, or a note saying why not.

    Taken on the caller's thread: a snapshot, so later changes to the caller's objects
    cannot reach the event. Anything JSON cannot hold becomes its `str()`, non-finite
    numbers become null (as pydantic writes them).
    """
    if not value:
        return EMPTY_OBJECT_JSON
    try:
        text = _compact(value)
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            return _dropped_note(f"{field_name} is not JSON-serializable: {exc}")
        text = _compact(_finite(value))
    except (TypeError, RecursionError) as exc:
        return _dropped_note(f"{field_name} is not JSON-serializable: {exc}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_OBJECT_JSON_BYTES:
        return _dropped_note(f"{field_name} was {size} bytes of JSON; at most {MAX_OBJECT_JSON_BYTES} allowed")
    return text


def format_timestamp(finished_ns: int) -> str:
    """RFC 3339 UTC, microseconds when there are any, as pydantic writes an aware datetime."""
    seconds, nanos = divmod(finished_ns, 1_000_000_000)
    micros = nanos // 1000
    whole = _whole_second(seconds)
    return f"{whole}.{micros:06d}Z" if micros else f"{whole}Z"


_EVENT_ID, _PROJECT_ID = EventDraft._fields.index("event_id"), EventDraft._fields.index("project_id")


def _draft_json(draft: EventDraft | tuple[Any, ...]) -> str:
    (event_id, finished_ns, source, project_id, agent_name, session_id, handoff_chain, operation, method,
     provider, model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
     total_tokens, tool_calls, finish_reason, duration_ms, error, provider_cost, provider_metadata_json,
     context_json) = draft
    s = encode_basestring
    parts = [
        '{"schema_version":1,"event_id":', s(event_id),
        ',"timestamp":"', format_timestamp(finished_ns),
        '","source":', s(source),
        ',"project_id":', s(project_id),
        ',"agent_name":', s(agent_name),
        ',"session_id":', _optional(session_id),
        ',"handoff_chain":[', ",".join(map(s, handoff_chain)),
        '],"operation":', _optional(operation),
        ',"method":', s(method),
        ',"provider":', s(provider),
        ',"model":', s(model),
        ',"usage":{"input_tokens":', str(input_tokens),
        ',"output_tokens":', str(output_tokens),
        ',"cache_read_tokens":', str(cache_read_tokens),
        ',"cache_write_tokens":', str(cache_write_tokens),
        ',"reasoning_tokens":', str(reasoning_tokens),
        ',"total_tokens":', "null" if total_tokens is None else str(total_tokens),
        '},"tool_calls":[', ",".join([_tool_json(*tool) for tool in tool_calls]),
        '],"finish_reason":', _optional(finish_reason),
        ',"duration_ms":', _number(duration_ms),
        ',"error":', _optional(error),
        ',"provider_cost":', "null" if provider_cost is None else f'"{provider_cost:f}"',
        ',"provider_metadata":', provider_metadata_json,
        ',"context":', context_json,
        "}",
    ]
    return "".join(parts)


def _tool_json(name: str, duration_ms: float | None, error: str | None) -> str:
    return f'{{"name":{encode_basestring(name)},"duration_ms":{_number(duration_ms)},"error":{_optional(error)}}}'


def _optional(text: str | None) -> str:
    return "null" if text is None else encode_basestring(text)


def _number(value: float | None) -> str:
    if value is None:
        return "null"
    text = repr(float(value))
    if "e-" not in text:
        return text
    # pydantic writes 1e-05 as 0.00001 and 1.5e-07 as 1.5e-7.
    mantissa, exponent = text.split("e-")
    if int(exponent) == 5:
        return "0.0000" + mantissa.replace(".", "")
    return f"{mantissa}e-{int(exponent)}"


_last_second: list[Any] = [None, ""]


def _whole_second(seconds: int) -> str:
    # Calls finish many to a second: format each second once (a race only recomputes it).
    cached_second, cached_text = _last_second
    if cached_second == seconds:
        return cached_text
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    _last_second[:] = [seconds, text]
    return text


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _dropped_note(reason: str) -> str:
    return _compact({"dropped": reason[:MAX_NAME_CHARS]})
