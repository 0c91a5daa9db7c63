"""One LLM call as it happens (`CallRecord`), and the `UsageTrackingEvent` it becomes.

Pure apart from the clock: instrumentation and `track_llm_call` fill a record while the
call runs, then `draft_event` snapshots it into an `EventDraft` that is a valid event
whatever the record holds (`build_event` gives it as a `UsageTrackingEvent`). The draft
is all the caller's thread pays for; encoding happens in the background sender.
The event id (a UUIDv7) is drawn once, when the record is made, so every re-send of the
event (retry, spool replay) carries the same id and is billed once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from producers.context import UsageContext, current_usage_context
from producers.event_ids import new_event_id
from producers.usage_mapping import ZERO_USAGE, MappedUsage
from producers.wire import EMPTY_OBJECT_JSON, EventDraft, draft_tool, materialize, object_json
from schemas import ToolCall, Usage, UsageTrackingEvent
from schemas.event import (
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    MAX_TOOL_CALLS,
    MAX_TOOL_ERROR_CHARS,
    DecimalString,
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
    event_id: str = field(default_factory=new_event_id)
    attribution: UsageContext = field(default_factory=current_usage_context)
    started: float = field(default_factory=time.perf_counter)
    duration_ms: float | None = None
    finished_ns: int | None = None
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
        if self.finished_ns is None:
            self.duration_ms = max((time.perf_counter() - self.started) * 1000.0, 0.0)
            self.finished_ns = time.time_ns()

    @property
    def finished_at(self) -> datetime | None:
        """When the call finished (UTC), once it has."""
        if self.finished_ns is None:
            return None
        return datetime.fromtimestamp(self.finished_ns // 1000 / 1e6, timezone.utc)


def describe_error(error: BaseException) -> str:
    """`TypeName: message`, as the event's `error` text."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def build_event(record: CallRecord, defaults: TrackingDefaults) -> UsageTrackingEvent:
    """The event for a finished call, validated: `draft_event` as a `UsageTrackingEvent`."""
    return materialize(draft_event(record, defaults))


def draft_event(record: CallRecord, defaults: TrackingDefaults) -> EventDraft:
    """The event for a finished call, attributed call > usage_context > defaults.

    Never fails on what a caller could not have known: over-long names and texts are
    cut to the schema's limits, an over-large `context` or `provider_metadata` is
    replaced by a note saying so, a provider cost the schema cannot hold is moved into
    `provider_metadata`, and a call that reported no usage gets zero tokens *and* an
    `error` saying usage is missing, so it can never pass for a free call.
    """
    record.finish()
    attribution = record.attribution
    usage = record.usage
    error = record.error
    if usage is None:
        usage = ZERO_USAGE
        if error is None:
            error = "usage not reported: the call ended without a provider response carrying usage"
    metadata = record.provider_metadata
    provider_cost = record.provider_cost
    tool_calls = record.tool_calls
    if provider_cost is not None or len(tool_calls) > MAX_TOOL_CALLS:
        metadata = dict(metadata)
        provider_cost = _storable_cost(provider_cost, metadata)
        tool_calls = _bounded_tool_calls(tool_calls, metadata)
    extra = attribution.extra
    context = {**extra, **record.context} if extra else record.context
    chain = attribution.handoff_chain
    return EventDraft(
        record.event_id,
        record.finished_ns,  # type: ignore[arg-type] - set by finish() above
        _name(defaults.source) or UNKNOWN,
        _name(record.project_id or attribution.project_id or defaults.project_id) or UNATTRIBUTED,
        _name(record.agent_name or attribution.agent_name or defaults.agent_name) or UNATTRIBUTED,
        _name(record.session_id or attribution.session_id),
        tuple(_name(agent) for agent in chain if agent) if chain else (),  # type: ignore[misc]
        _name(record.operation or attribution.operation),
        "stream" if record.method == "stream" else "generate",
        _name(record.provider) or UNKNOWN,
        _name(record.model) or UNKNOWN,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
        usage.total_tokens,
        tuple([draft_tool(tool) for tool in tool_calls]) if tool_calls else (),
        _name(record.finish_reason),
        record.duration_ms,
        error[:MAX_TEXT_CHARS] if error else None,
        provider_cost,
        object_json(metadata, "provider_metadata") if metadata else EMPTY_OBJECT_JSON,
        object_json(context, "context") if context else EMPTY_OBJECT_JSON,
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
    return value[:MAX_NAME_CHARS] if type(value) is str else str(value)[:MAX_NAME_CHARS]


def _bounded_tool_calls(tool_calls: list[ToolCall], metadata: dict[str, Any]) -> list[ToolCall]:
    if len(tool_calls) <= MAX_TOOL_CALLS:
        return tool_calls
    # The count matters for reports: keep it even where the list must be cut.
    metadata["tool_calls_total"] = len(tool_calls)
    return tool_calls[:MAX_TOOL_CALLS]


def _storable_cost(cost: Decimal | None, metadata: dict[str, Any]) -> Decimal | None:
    """The provider's cost if the schema can hold it exactly; else kept as text in metadata."""
    if cost is None:
        return None
    try:
        return _COST.validate_python(cost)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        metadata["provider_cost_unstorable"] = f"{cost}: {reason}"[:MAX_NAME_CHARS]
        return None


_COST: TypeAdapter[Decimal] = TypeAdapter(DecimalString)
