"""What a provider response says about its call: model, usage, finish reason, tools.

Pure: works on the SDK's objects or on the plain JSON dicts alike (`field_of`), so it is
tested without any SDK and reused by `track_llm_call` for responses a caller hands in.
Stream accumulators read a stream chunk by chunk and can say, at any point, what was
seen so far: that is what an aborted stream's partial event is made of.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from producers.usage_mapping import (
    MappedUsage,
    field_of,
    path_of,
    usage_from_anthropic,
    usage_from_catalog,
    usage_from_openai_chat,
    usage_from_openai_responses,
)

# Responses API output items that are tool invocations, built-in or the caller's own.
_RESPONSES_TOOL_ITEMS = {
    "function_call",
    "custom_tool_call",
    "web_search_call",
    "file_search_call",
    "code_interpreter_call",
    "image_generation_call",
    "computer_call",
    "local_shell_call",
    "shell_call",
    "apply_patch_call",
    "mcp_call",
    "tool_search_call",
}


@dataclass
class ResponseFacts:
    """What one response (or the part of a stream seen so far) says about the call."""

    model: str | None = None
    usage: MappedUsage | None = None
    finish_reason: str | None = None
    tool_names: list[str] = field(default_factory=list)
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def describe_response(response: Any, provider: str | None = None) -> ResponseFacts | None:
    """Facts of any response we can read, recognised by its shape; None if unrecognised.

    OpenAI chat completions (`object == "chat.completion"`), Responses API
    (`object == "response"`), Anthropic messages (`type == "message"`); for any other
    provider genai-prices' extractors are tried when `provider` is given.
    """
    kind = field_of(response, "object")
    if kind == "chat.completion":
        return describe_openai_chat(response)
    if kind == "response":
        return describe_openai_response(response)
    if field_of(response, "type") == "message" and field_of(response, "role") == "assistant":
        return describe_anthropic_message(response)
    if provider:
        return _describe_with_catalog(response, provider)
    return None


def describe_openai_chat(completion: Any) -> ResponseFacts:
    """Facts of an OpenAI `ChatCompletion` (or a compatible gateway's)."""
    facts = ResponseFacts(model=field_of(completion, "model"))
    native = field_of(completion, "usage")
    if native is not None:
        facts.usage = usage_from_openai_chat(native)
    reasons = []
    for choice in field_of(completion, "choices") or ():
        reasons.append(field_of(choice, "finish_reason"))
        for tool in path_of(choice, "message", "tool_calls") or ():
            facts.tool_names.append(_chat_tool_name(tool))
        legacy_function = path_of(choice, "message", "function_call", "name")
        if legacy_function:
            facts.tool_names.append(legacy_function)
    facts.finish_reason = _first_reason(reasons)
    _keep_metadata(facts, "response_id", field_of(completion, "id"))
    _keep_metadata(facts, "system_fingerprint", field_of(completion, "system_fingerprint"))
    _keep_metadata(facts, "service_tier", field_of(completion, "service_tier"))
    return facts


def describe_openai_response(response: Any) -> ResponseFacts:
    """Facts of an OpenAI Responses API `Response`.

    It has no finish reason; one is derived from its status: `stop`, `tool_calls` when
    it asks for tools, the incomplete reason (e.g. `max_output_tokens`), or `failed`.
    """
    facts = ResponseFacts(model=field_of(response, "model"))
    native = field_of(response, "usage")
    if native is not None:
        facts.usage = usage_from_openai_responses(native)
    for item in field_of(response, "output") or ():
        name = _responses_tool_name(item)
        if name:
            facts.tool_names.append(name)
    status = field_of(response, "status")
    if status == "completed":
        output = field_of(response, "output") or ()
        asks_for_tools = any(field_of(item, "type") in {"function_call", "custom_tool_call"} for item in output)
        facts.finish_reason = "tool_calls" if asks_for_tools else "stop"
    elif status == "incomplete":
        facts.finish_reason = path_of(response, "incomplete_details", "reason") or "incomplete"
    elif status in {"failed", "cancelled"}:
        facts.finish_reason = status
        message = path_of(response, "error", "message")
        code = path_of(response, "error", "code")
        facts.error = f"response {status}: {code or ''} {message or ''}".strip()
    elif status:
        facts.finish_reason = status
    _keep_metadata(facts, "response_id", field_of(response, "id"))
    _keep_metadata(facts, "service_tier", field_of(response, "service_tier"))
    return facts


def describe_anthropic_message(message: Any) -> ResponseFacts:
    """Facts of an Anthropic `Message`: cache reads and writes included in input."""
    facts = ResponseFacts(model=field_of(message, "model"), finish_reason=field_of(message, "stop_reason"))
    native = field_of(message, "usage")
    if native is not None:
        facts.usage = usage_from_anthropic(native)
    for block in field_of(message, "content") or ():
        if field_of(block, "type") in {"tool_use", "server_tool_use", "mcp_tool_use"}:
            facts.tool_names.append(field_of(block, "name") or "tool")
    _keep_metadata(facts, "response_id", field_of(message, "id"))
    return facts


class OpenAIChatStreamReader:
    """Reads `ChatCompletionChunk`s. Usage comes in a final chunk with no choices.

    When usage was requested by us rather than by the caller (`hide_usage_chunk`), that
    final chunk is kept from the caller, so the stream looks exactly as it would have
    without tracking (code indexing `chunk.choices[0]` keeps working).
    """

    def __init__(self, *, hide_usage_chunk: bool = False) -> None:
        self.hide_usage_chunk = hide_usage_chunk
        self.chunks = 0
        self._facts = ResponseFacts()
        self._tool_names: dict[tuple[int, int], str] = {}
        self._reasons: dict[int, str] = {}

    def observe(self, chunk: Any) -> bool:
        """Take one chunk; returns whether the caller should see it."""
        self.chunks += 1
        facts = self._facts
        facts.model = facts.model or field_of(chunk, "model")
        _keep_metadata(facts, "response_id", field_of(chunk, "id"))
        _keep_metadata(facts, "system_fingerprint", field_of(chunk, "system_fingerprint"))
        choices = field_of(chunk, "choices") or ()
        for choice in choices:
            index = field_of(choice, "index") or 0
            for tool in path_of(choice, "delta", "tool_calls") or ():
                name = path_of(tool, "function", "name")
                if name:
                    self._tool_names.setdefault((index, field_of(tool, "index") or 0), name)
            reason = field_of(choice, "finish_reason")
            if reason:
                self._reasons[index] = reason
        native = field_of(chunk, "usage")
        if native is not None:
            facts.usage = usage_from_openai_chat(native)
            return not (self.hide_usage_chunk and not choices)
        return True

    def facts(self) -> ResponseFacts:
        """What the chunks so far say."""
        facts = self._facts
        facts.tool_names = [self._tool_names[key] for key in sorted(self._tool_names)]
        facts.finish_reason = _first_reason([self._reasons[i] for i in sorted(self._reasons)])
        return facts


class OpenAIResponsesStreamReader:
    """Reads Responses API stream events; the terminal event carries the whole response."""

    hide_usage_chunk = False

    def __init__(self) -> None:
        self.chunks = 0
        self._final: ResponseFacts | None = None
        self._partial = ResponseFacts()
        self._tool_items: dict[str, str] = {}

    def observe(self, event: Any) -> bool:
        """Take one event; every event is passed on to the caller."""
        self.chunks += 1
        kind = field_of(event, "type")
        if kind in {"response.completed", "response.incomplete", "response.failed"}:
            self._final = describe_openai_response(field_of(event, "response"))
        elif kind in {"response.created", "response.in_progress", "response.queued"}:
            response = field_of(event, "response")
            self._partial.model = self._partial.model or field_of(response, "model")
            _keep_metadata(self._partial, "response_id", field_of(response, "id"))
        elif kind in {"response.output_item.added", "response.output_item.done"}:
            item = field_of(event, "item")
            name = _responses_tool_name(item)
            if name:
                key = field_of(item, "id") or f"#{field_of(event, 'output_index')}"
                self._tool_items.setdefault(key, name)
        elif kind == "error":
            code, message = field_of(event, "code") or "", field_of(event, "message") or ""
            self._partial.error = f"stream error: {code} {message}".strip()
        return True

    def facts(self) -> ResponseFacts:
        """The terminal response's facts, or what was seen before it."""
        if self._final is not None:
            if self._final.model is None:
                self._final.model = self._partial.model
            return self._final
        self._partial.tool_names = list(self._tool_items.values())
        return self._partial


class AnthropicStreamReader:
    """Reads Anthropic message stream events.

    `message_start` carries the input side of usage (cache reads and writes included)
    and `message_delta` the cumulative output, so an aborted stream still knows its
    input tokens.
    """

    hide_usage_chunk = False

    def __init__(self) -> None:
        self.chunks = 0
        self._facts = ResponseFacts()
        self._native_usage: dict[str, Any] = {}

    def observe(self, event: Any) -> bool:
        """Take one event; every event is passed on to the caller."""
        self.chunks += 1
        kind = field_of(event, "type")
        if kind == "message_start":
            message = field_of(event, "message")
            self._facts.model = field_of(message, "model")
            _keep_metadata(self._facts, "response_id", field_of(message, "id"))
            self._merge_usage(field_of(message, "usage"))
        elif kind == "content_block_start":
            block = field_of(event, "content_block")
            if field_of(block, "type") in {"tool_use", "server_tool_use", "mcp_tool_use"}:
                self._facts.tool_names.append(field_of(block, "name") or "tool")
        elif kind == "message_delta":
            reason = path_of(event, "delta", "stop_reason")
            if reason:
                self._facts.finish_reason = reason
            self._merge_usage(field_of(event, "usage"))
        return True

    def facts(self) -> ResponseFacts:
        """What the events so far say."""
        if self._native_usage:
            self._facts.usage = usage_from_anthropic(self._native_usage)
        return self._facts

    def _merge_usage(self, native: Any) -> None:
        # message_delta repeats fields with their latest (cumulative) value, or null.
        if native is None:
            return
        data = native if isinstance(native, dict) else _model_dict(native)
        for name, value in data.items():
            if value is not None:
                self._native_usage[name] = value


def _describe_with_catalog(response: Any, provider: str) -> ResponseFacts | None:
    data = response if isinstance(response, dict) else _model_dict(response)
    try:
        usage = usage_from_catalog(data, provider)
    except (ValueError, LookupError, KeyError, TypeError):
        return None
    return ResponseFacts(model=field_of(data, "model"), usage=usage)


def _model_dict(obj: Any) -> dict[str, Any]:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    return dict(getattr(obj, "__dict__", {}))


def _chat_tool_name(tool: Any) -> str:
    kind = field_of(tool, "type")
    if kind == "custom":
        return path_of(tool, "custom", "name") or "custom"
    return path_of(tool, "function", "name") or kind or "tool"


def _responses_tool_name(item: Any) -> str | None:
    kind = field_of(item, "type")
    if kind not in _RESPONSES_TOOL_ITEMS:
        return None
    if kind in {"function_call", "custom_tool_call", "mcp_call"}:
        return field_of(item, "name") or kind
    return kind.removesuffix("_call")


def _first_reason(reasons: list[Any]) -> str | None:
    # With n > 1 choices, a tool request anywhere is what matters for the next round trip.
    present = [reason for reason in reasons if reason]
    if "tool_calls" in present:
        return "tool_calls"
    return present[0] if present else None


def _keep_metadata(facts: ResponseFacts, name: str, value: Any) -> None:
    if isinstance(value, str) and value and name not in facts.metadata:
        facts.metadata[name] = value
