"""`track_llm_call` (sync, async, decorator) and `UsageResponse`: usage inline, errors unwrapped."""

from __future__ import annotations

import asyncio
import time

import pytest

from producers import (
    UsageResponse,
    collect_usage,
    configure_usage_tracking,
    track_llm_call,
    usage_context,
    with_usage,
    with_usage_async,
)
from schemas import UsageTrackingEvent
from tests.unit.producers.conftest import PROJECT, SOURCE
from tests.unit.producers.provider_fakes import (
    anthropic_message,
    anthropic_usage,
    openai_chat_completion,
    openai_chat_usage,
)


def test_context_manager_measures_and_reports_one_event(events: list[UsageTrackingEvent]) -> None:
    with usage_context(agent_name="triage", session_id="s-1"):
        with track_llm_call("classify", provider="openai", model="gpt-4o-mini", ticket="T-1") as call:
            time.sleep(0.02)
            call.set_usage(input_tokens=1200, output_tokens=300, cache_read_tokens=800, reasoning_tokens=100)
            call.set_finish_reason("stop")

    (event,) = events
    assert (event.source, event.project_id, event.agent_name, event.session_id) == (SOURCE, PROJECT, "triage", "s-1")
    assert (event.operation, event.provider, event.model, event.method) == (
        "classify",
        "openai",
        "gpt-4o-mini",
        "generate",
    )
    assert (event.usage.input_tokens, event.usage.cache_read_tokens, event.usage.reasoning_tokens) == (1200, 800, 100)
    assert event.duration_ms >= 20 and event.finish_reason == "stop" and event.error is None
    assert event.context == {"ticket": "T-1"} and event.event_id == call.event_id


def test_tools_are_timed_counted_and_their_errors_kept(events: list[UsageTrackingEvent]) -> None:
    with track_llm_call("answer", provider="anthropic", model="claude-haiku-4-5") as call:
        call.record_response(anthropic_message(anthropic_usage(10, 5), tool_use=("search_kb", {"q": "x"})))
        with call.tool("search_kb"):
            time.sleep(0.01)
        with pytest.raises(KeyError), call.tool("lookup_order"):
            raise KeyError("order 42")
        call.record_tool("notify", duration_ms=3.5)

    tools = events[0].tool_calls
    assert [tool.name for tool in tools] == ["search_kb", "lookup_order", "notify"]
    assert tools[0].duration_ms >= 10 and tools[0].error is None
    assert tools[1].error == "KeyError: 'order 42'"
    assert tools[2].duration_ms == 3.5


def test_a_failed_call_is_still_an_event_and_the_error_propagates_unchanged(events: list[UsageTrackingEvent]) -> None:
    class ProviderDown(Exception):
        pass

    with pytest.raises(ProviderDown), track_llm_call("op", provider="openai", model="gpt-4o"):
        raise ProviderDown("503 from upstream")

    (event,) = events
    assert event.error == "ProviderDown: 503 from upstream"
    assert event.usage.input_tokens == 0


def test_a_call_that_reports_no_usage_is_marked_not_free(events: list[UsageTrackingEvent]) -> None:
    with track_llm_call("op", provider="openai", model="gpt-4o"):
        pass

    assert "usage not reported" in events[0].error


def test_record_response_reads_sdk_shapes_as_dicts(events: list[UsageTrackingEvent]) -> None:
    with track_llm_call("op") as call:
        call.record_response(openai_chat_completion(openai_chat_usage(100, 20, cached=50), tool_calls=[("f", "{}")]))

    (event,) = events
    assert (event.model, event.usage.input_tokens, event.usage.cache_read_tokens) == ("gpt-4o-2024-08-06", 100, 50)
    assert (event.finish_reason, [tool.name for tool in event.tool_calls]) == ("tool_calls", ["f"])


def test_other_providers_are_read_with_genai_prices(events: list[UsageTrackingEvent]) -> None:
    pytest.importorskip("genai_prices")
    gemini = {
        "model": "gemini-2.5-flash",
        "usageMetadata": {
            "promptTokenCount": 120,
            "candidatesTokenCount": 30,
            "cachedContentTokenCount": 100,
            "thoughtsTokenCount": 10,
            "totalTokenCount": 160,
        },
    }
    with track_llm_call("op", provider="google", model="gemini-2.5-flash") as call:
        call.record_response(gemini)

    usage = events[0].usage
    assert usage.input_tokens == 120 and usage.cache_read_tokens == 100
    assert usage.output_tokens >= 30


def test_decorator_tracks_each_invocation_and_records_the_returned_response(events: list[UsageTrackingEvent]) -> None:
    @track_llm_call(provider="openai", project_id="proj-override")
    def summarize(text: str) -> dict:
        return openai_chat_completion(openai_chat_usage(len(text), 5))

    summarize("abc")
    summarize("abcdef")

    assert [(e.operation, e.project_id, e.usage.input_tokens) for e in events] == [
        ("summarize", "proj-override", 3),
        ("summarize", "proj-override", 6),
    ]
    assert events[0].event_id != events[1].event_id


def test_async_decorator_and_async_with(events: list[UsageTrackingEvent]) -> None:
    @track_llm_call("draft", provider="anthropic")
    async def draft() -> dict:
        await asyncio.sleep(0)
        return anthropic_message(anthropic_usage(10, 4, cache_read=90))

    async def main() -> None:
        await draft()
        async with track_llm_call("review", provider="openai", model="gpt-4o") as call:
            call.set_usage(input_tokens=7, output_tokens=1)

    asyncio.run(main())

    assert [(e.operation, e.usage.input_tokens) for e in events] == [("draft", 100), ("review", 7)]


def test_usage_response_carries_usage_beside_the_result(events: list[UsageTrackingEvent]) -> None:
    def work() -> str:
        for tokens in (10, 20):
            with track_llm_call("step", provider="openai", model="gpt-4o") as call:
                call.set_usage(input_tokens=tokens, output_tokens=1, cache_read_tokens=5)
        return "done"

    response = with_usage(work)

    assert isinstance(response, UsageResponse)
    assert response.unwrap() == response.data == "done"
    assert (response.usage.input_tokens, response.usage.cache_read_tokens, response.requests) == (30, 10, 2)


def test_usage_response_works_with_publishing_disabled_or_unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_usage_tracking(bootstrap_servers="127.0.0.1:9", environ={"USAGE_TRACKING_DISABLED": "1"})

    def call() -> int:
        with track_llm_call("op", provider="openai", model="gpt-4o") as tracked:
            tracked.set_usage(input_tokens=42, output_tokens=1)
        return 1

    assert with_usage(call).usage.input_tokens == 42


def test_errors_are_not_wrapped() -> None:
    def failing() -> None:
        raise LookupError("no such model")

    with pytest.raises(LookupError, match="no such model"):
        with_usage(failing)


def test_async_usage_response_and_collect_usage_blocks() -> None:
    async def call(tokens: int) -> int:
        async with track_llm_call("op", provider="openai", model="gpt-4o") as tracked:
            tracked.set_usage(input_tokens=tokens, output_tokens=0)
        return tokens

    async def main() -> tuple[UsageResponse[int], int]:
        response = await with_usage_async(call(5))
        with collect_usage() as collected:
            await asyncio.gather(call(1), call(2))
        return response, collected.usage.input_tokens

    response, gathered = asyncio.run(main())

    assert (response.data, response.usage.input_tokens, gathered) == (5, 5, 3)
