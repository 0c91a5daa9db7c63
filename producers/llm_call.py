"""`track_llm_call`: one event for one LLM call made by code that is not instrumented.

    with track_llm_call("classify_ticket", provider="openai", model="gpt-4o-mini") as call:
        response = my_http_client.post(...)           # any client, any provider
        call.record_response(response.json())         # usage, model, finish reason, tools
        with call.tool("search_kb"):                   # tool runs: name, duration, error
            search(...)

    @track_llm_call("summarize")                       # sync or async functions
    async def summarize(text): return await client.messages.create(...)

The block measures the duration; an exception in it makes a failed-call event (and is
re-raised unchanged). When an instrumented client (`instrument_openai`, ...) is used
inside the block, each of its round trips is already an event of its own: the block then
lends them its operation name and context, and tools run in the block are attached to
the round trip that asked for them. The block itself adds an event only for usage it was
given directly, so nothing is counted twice.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from producers.call import CallRecord, Method, tool_call
from producers.provider_responses import ResponseFacts, describe_response
from producers.tracking import report_call
from producers.usage_mapping import MappedUsage, build_usage
from schemas import ToolCall, Usage

F = TypeVar("F", bound=Callable[..., Any])

_ACTIVE_CALL: contextvars.ContextVar[LlmCall | None] = contextvars.ContextVar("active_llm_call", default=None)


class LlmCall:
    """The call being tracked by a `track_llm_call` block; thread-safe."""

    def __init__(self, record: CallRecord) -> None:
        self.record = record
        self._lock = threading.Lock()
        self._has_own_usage = False
        self._pending: CallRecord | None = None
        self._pending_tools: list[ToolCall] = []
        self._instrumented_started = 0
        self._instrumented_responses: set[int] = set()
        self.closed = False

    @property
    def event_id(self) -> str:
        """The id this block's own event will carry (generated once)."""
        return self.record.event_id

    def record_response(self, response: Any, *, provider: str | None = None) -> None:
        """Take usage, model, finish reason and tool requests from a provider response.

        Accepts the OpenAI and Anthropic SDK objects or their JSON dicts, and the JSON
        of any provider genai-prices knows (`provider="google"`, ...). A response that
        an instrumented client already tracked is ignored, so it is never billed twice;
        an unreadable one leaves the call without usage, which its event then says.
        """
        if id(response) in self._instrumented_responses:
            return
        facts = describe_response(response, provider or self.record.provider)
        if facts is None:
            return
        with self._lock:
            apply_facts(self.record, facts)
            self._has_own_usage = self._has_own_usage or facts.usage is not None

    def record_returned(self, result: Any) -> None:
        """A decorated function's return value: recorded if it is a provider response."""
        if result is None or isinstance(result, (str, bytes, int, float, bool)):
            return
        self.record_response(result)

    def set_usage(
        self,
        usage: Usage | None = None,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        """Set the usage directly, in SPEC §1 terms (inputs include cache tokens)."""
        if usage is None:
            details: dict[str, Any] = {}
            usage = build_usage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read_tokens,
                cache_write_tokens=cache_write_tokens,
                reasoning_tokens=reasoning_tokens,
                details=details,
            )
            self.record.provider_metadata.update(details)
        with self._lock:
            self.record.apply_usage(MappedUsage(usage))
            self._has_own_usage = True

    def set_finish_reason(self, reason: str) -> None:
        """Record how the call ended (`stop`, `tool_calls`, `max_tokens`, ...)."""
        self.record.finish_reason = reason

    def fail(self, error: BaseException | str) -> None:
        """Mark the call failed without raising (an exception in the block does this too)."""
        with self._lock:
            self.record.fail(error)

    def record_tool(
        self, name: str, duration_ms: float | None = None, error: BaseException | str | None = None
    ) -> None:
        """Record one tool run: its name, how long it took and how it failed, if it did."""
        text = None
        if isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        elif error:
            text = error
        with self._lock:
            self._pending_tools.append(tool_call(name, duration_ms, text))

    @contextmanager
    def tool(self, name: str) -> Iterator[None]:
        """Time a tool run; an exception in the block is recorded and re-raised."""
        started = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self.record_tool(name, (time.perf_counter() - started) * 1000.0, exc)
            raise
        self.record_tool(name, (time.perf_counter() - started) * 1000.0)

    def instrumented_call_started(self) -> None:
        """An instrumented round trip began in the block: it will report itself."""
        with self._lock:
            self._instrumented_started += 1

    def adopt(self, record: CallRecord, response: Any = None) -> None:
        """Take an instrumented round trip made inside the block (see module docstring)."""
        if response is not None:
            self._instrumented_responses.add(id(response))
        with self._lock:
            if self.closed:
                report_later = record
            else:
                report_later = self._pending
                self._lend_attribution(record)
                self._attach_tools(report_later)
                self._pending = record
        if report_later is not None:
            report_call(report_later)

    def close(self, error: BaseException | None) -> None:
        """End the block: report the last round trip and, if it has one, its own event."""
        with self._lock:
            self.closed = True
            pending, self._pending = self._pending, None
            self._attach_tools(pending)
            # Round trips of an instrumented client are events already (a stream's may
            # still be running): the block's own event is only for usage given to it.
            own_event_due = self._has_own_usage or self._instrumented_started == 0
            if own_event_due and error is not None and self.record.error is None:
                self.record.fail(error)
            if own_event_due:
                self._attach_tools(self.record)
        if pending is not None:
            report_call(pending)
        if own_event_due:
            report_call(self.record)

    def _lend_attribution(self, record: CallRecord) -> None:
        own = self.record
        record.operation = record.operation or own.operation
        record.project_id = record.project_id or own.project_id
        record.agent_name = record.agent_name or own.agent_name
        record.session_id = record.session_id or own.session_id
        record.context = {**own.context, **record.context}

    def _attach_tools(self, record: CallRecord | None) -> None:
        """Tools run since `record` finished belong to it: they are what it asked for."""
        if record is None or not self._pending_tools:
            return
        record.tool_calls = merge_tool_calls(record.tool_calls, self._pending_tools)
        self._pending_tools = []


class track_llm_call:  # noqa: N801 - used like a function: `with track_llm_call(...)`, `@track_llm_call(...)`
    """Track one LLM call: a context manager (`with`/`async with`) and a decorator.

    `operation` names what the call is for. `provider`, `model` and `method` describe the
    call until a response says better. `project_id`, `agent_name`, `session_id` override
    the `usage_context` for this call only; other keyword arguments go into the event's
    `context`. As a decorator, a provider response returned by the function is recorded
    automatically, and a new call is tracked per invocation.
    """

    def __init__(
        self,
        operation: str | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        method: Method = "generate",
        project_id: str | None = None,
        agent_name: str | None = None,
        session_id: str | None = None,
        **context: Any,
    ) -> None:
        self._options = dict(
            operation=operation,
            provider=provider,
            model=model,
            method=method,
            project_id=project_id,
            agent_name=agent_name,
            session_id=session_id,
        )
        self._context = context
        self._entered: list[tuple[LlmCall, contextvars.Token[LlmCall | None]]] = []

    def __enter__(self) -> LlmCall:
        call = LlmCall(CallRecord(**self._options, context=dict(self._context)))
        self._entered.append((call, _ACTIVE_CALL.set(call)))
        return call

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        call, token = self._entered.pop()
        _ACTIVE_CALL.reset(token)
        call.close(exc)

    async def __aenter__(self) -> LlmCall:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def __call__(self, function: F) -> F:
        options, context = self._options, self._context
        if options["operation"] is None:
            options = {**options, "operation": function.__name__}

        def fresh_scope() -> track_llm_call:
            return track_llm_call(**options, **context)

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def tracked_async(*args: Any, **kwargs: Any) -> Any:
                with fresh_scope() as call:
                    result = await function(*args, **kwargs)
                    call.record_returned(result)
                    return result

            return tracked_async  # type: ignore[return-value]

        @functools.wraps(function)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            with fresh_scope() as call:
                result = function(*args, **kwargs)
                call.record_returned(result)
                return result

        return tracked  # type: ignore[return-value]


def current_llm_call() -> LlmCall | None:
    """The innermost `track_llm_call` block in force, if any."""
    return _ACTIVE_CALL.get()


def finish_instrumented_call(record: CallRecord, scope: LlmCall | None, response: Any = None) -> None:
    """Report an instrumented round trip: through its `track_llm_call` block, if any."""
    if scope is not None:
        scope.adopt(record, response)
    else:
        report_call(record)


def apply_facts(record: CallRecord, facts: ResponseFacts) -> None:
    """Copy what a response says into the call's record."""
    record.model = facts.model or record.model
    if facts.usage is not None:
        record.apply_usage(facts.usage)
    if facts.finish_reason:
        record.finish_reason = facts.finish_reason
    if facts.tool_names:
        record.tool_calls = merge_tool_calls([tool_call(name) for name in facts.tool_names], record.tool_calls)
    if facts.error and record.error is None:
        record.error = facts.error
    for key, value in facts.metadata.items():
        record.provider_metadata.setdefault(key, value)


def merge_tool_calls(requested: list[ToolCall], executed: list[ToolCall]) -> list[ToolCall]:
    """The tools a response asked for, completed with how their runs went.

    Each run replaces the first not-yet-matched request of the same name (adding its
    duration and error); runs nobody asked for are appended; requests never run stay
    as they were (name only).
    """
    merged = list(requested)
    matched = [False] * len(merged)
    for run in executed:
        for index, request in enumerate(merged):
            if not matched[index] and request.name == run.name:
                merged[index] = run
                matched[index] = True
                break
        else:
            merged.append(run)
            matched.append(True)
    return merged
