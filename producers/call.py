"""One LLM call as it happens (`CallRecord`), and the `UsageTrackingEvent` it becomes.

Pure apart from the clock: instrumentation and `track_llm_call` fill a record while the
call runs, then `build_event` turns it into a valid event, whatever the record holds.
The event id is drawn once, when the record is made, so every re-send of the event
(retry, spool replay) carries the same id and is billed once.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from producers.context import UsageContext, current_usage_context
from producers.usage_mapping import ZERO_USAGE, MappedUsage
from schemas import ToolCall, Usage, UsageTrackingEvent
from schemas.event import (
    MAX_NAME_CHARS,
    MAX_OBJECT_JSON_BYTES,
    MAX_TEXT_CHARS,
    MAX_TOOL_CALLS,
    MAX_TOOL_ERROR_CHARS,
    SCHEMA_VERSION,
)

# Attribution of last resort: visible in every report, unlike a dropped event.
UNATTRIBUTED = "unattributed"
UNKNOWN = "unknown"

Method = Literal["generate", "stream"]


@dataclass(frozen=True, slots=True)
class TrackingDefaults:
    """Attribution used when neither the call nor its `usage_context` says otherwise."""

    source: str = UNKNOWN
    project_id: str | None = None
    agent_name: str | None = None


@dataclass(slots=True)
class CallRecord:
    """What is known about one LLM call so far; mutable until it is reported."""

    provider: str | None = None
    model: str | None = None
    method: Method = "generate"
    operation: str | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attribution: UsageContext = field(default_factory=current_usage_context)
    started: float = field(default_factory=time.perf_counter)
    duration_ms: float | None = None
    finished_at: datetime | None = None
    usage: Usage | None = None
    provider_cost: Decimal | None = None
    finish_reason: str | None = None
    error: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    provider_metadata: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    project_id: str | None = None
    agent_name: str | None = None
    session_id: str | None = None

    def apply_usage(self, mapped: MappedUsage) -> None:
        """Take the mapped usage, its provider cost and its details."""
        self.usage = mapped.usage
        if mapped.provider_cost is not None:
            self.provider_cost = mapped.provider_cost
        self.provider_metadata.update(mapped.details)

    def fail(self, error: BaseException | str) -> None:
        """Mark the call failed; its event still goes out (its tokens may be billed)."""
        self.error = describe_error(error) if isinstance(error, BaseException) else error

    def finish(self) -> None:
        """Stop the clock (once): the event's timestamp is when the call finished."""
        if self.finished_at is None:
            self.duration_ms = max((time.perf_counter() - self.started) * 1000.0, 0.0)
            self.finished_at = datetime.now(timezone.utc)


def describe_error(error: BaseException) -> str:
    """`TypeName: message`, as the event's `error` text."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def build_event(record: CallRecord, defaults: TrackingDefaults) -> UsageTrackingEvent:
    """The event for a finished call, attributed call > usage_context > defaults.

    Never fails on what a caller could not have known: over-long names and texts are
    cut to the schema's limits, an over-large `context` or `provider_metadata` is
    replaced by a note saying so, and a call that reported no usage gets zero tokens
    *and* an `error` saying usage is missing, so it can never pass for a free call.
    """
    record.finish()
    attribution = record.attribution
    usage = record.usage
    error = record.error
    if usage is None:
        usage = ZERO_USAGE
        if error is None:
            error = "usage not reported: the call ended without a provider response carrying usage"
    metadata = dict(record.provider_metadata)
    tool_calls = _bounded_tool_calls(record.tool_calls, metadata)
    context = {**attribution.extra, **record.context}
    return UsageTrackingEvent(
        schema_version=SCHEMA_VERSION,
        event_id=record.event_id,
        timestamp=record.finished_at,
        source=_name(defaults.source) or UNKNOWN,
        project_id=_name(record.project_id or attribution.project_id or defaults.project_id) or UNATTRIBUTED,
        agent_name=_name(record.agent_name or attribution.agent_name or defaults.agent_name) or UNATTRIBUTED,
        session_id=_name(record.session_id or attribution.session_id),
        handoff_chain=[_name(agent) for agent in attribution.handoff_chain if _name(agent)],
        operation=_name(record.operation or attribution.operation),
        method=record.method,
        provider=_name(record.provider) or UNKNOWN,
        model=_name(record.model) or UNKNOWN,
        usage=usage,
        tool_calls=tool_calls,
        finish_reason=_name(record.finish_reason),
        duration_ms=record.duration_ms,
        error=error[:MAX_TEXT_CHARS] if error else None,
        provider_cost=record.provider_cost,
        provider_metadata=_bounded_object(metadata, "provider_metadata"),
        context=_bounded_object(context, "context"),
    )


def tool_call(name: str, duration_ms: float | None = None, error: str | None = None) -> ToolCall:
    """A schema `ToolCall`, with name and error cut to the schema's limits."""
    return ToolCall(
        name=_name(name) or UNKNOWN,
        duration_ms=max(duration_ms, 0.0) if duration_ms is not None else None,
        error=error[:MAX_TOOL_ERROR_CHARS] if error else None,
    )


def _name(value: str | None) -> str | None:
    if not value:
        return None
    return str(value)[:MAX_NAME_CHARS]


def _bounded_tool_calls(tool_calls: list[ToolCall], metadata: dict[str, Any]) -> list[ToolCall]:
    if len(tool_calls) <= MAX_TOOL_CALLS:
        return list(tool_calls)
    # The count matters for reports: keep it even where the list must be cut.
    metadata["tool_calls_total"] = len(tool_calls)
    return list(tool_calls[:MAX_TOOL_CALLS])


def _bounded_object(value: dict[str, Any], field_name: str) -> dict[str, Any]:
    if not value:
        return {}
    try:
        # default=str and a round trip make it JSON-ready: no sets, datetimes or objects left.
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        size = len(text.encode())
    except (TypeError, ValueError) as exc:
        return {"dropped": f"{field_name} is not JSON-serializable: {exc}"[:MAX_NAME_CHARS]}
    if size > MAX_OBJECT_JSON_BYTES:
        return {"dropped": f"{field_name} was {size} bytes of JSON; at most {MAX_OBJECT_JSON_BYTES} allowed"}
    return json.loads(text)
