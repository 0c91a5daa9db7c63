"""Real SDK clients -> instrumentation -> background transport -> real Kafka: one correct event per call."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from pathlib import Path

import pytest

from producers import (
    configure_usage_tracking,
    flush_usage_tracking,
    instrument_anthropic,
    instrument_openai,
    track_llm_call,
    usage_context,
    usage_tracking_stats,
)
from schemas import UsageTrackingEvent
from tests.integration.producers.kafka_reading import read_topic
from tests.unit.producers.provider_fakes import (
    FakeProviderServer,
    Reply,
    anthropic_message,
    anthropic_stream,
    anthropic_usage,
    openai_chat_completion,
    openai_chat_stream,
    openai_chat_usage,
    openai_response,
    openai_responses_stream,
    openai_responses_usage,
    openai_stream_error,
)

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

ASK = [{"role": "user", "content": "Where is my order?"}]
CLAUDE = "claude-haiku-4-5"


def run_every_kind_of_call(server: FakeProviderServer) -> None:
    """Plain calls, streams, aborted streams, a failure and a tool loop, on both SDKs, sync and async."""
    server.script(
        Reply(json_body=openai_chat_completion(openai_chat_usage(2006, 300, cached=1920, reasoning=192))),
        Reply(sse=openai_chat_stream(openai_chat_usage(30, 5, cached=16))),
        Reply(sse=openai_chat_stream(openai_chat_usage(30, 50), words=50), event_delay=0.005),
        Reply(sse=[*openai_chat_stream(openai_chat_usage(1, 1))[:2], openai_stream_error()]),
        Reply(json_body=openai_response(openai_responses_usage(1200, 900, cached=1024, reasoning=640))),
        Reply(sse=openai_responses_stream(openai_responses_usage(50, 20, reasoning=5))),
        Reply(json_body=openai_chat_completion(openai_chat_usage(100, 20), tool_calls=[("lookup_order", '{"id":7}')])),
        Reply(json_body=openai_chat_completion(openai_chat_usage(160, 30, cached=100))),
        Reply(json_body=anthropic_message(anthropic_usage(12, 6, cache_read=3000, cache_write=1500))),
        Reply(sse=anthropic_stream(anthropic_usage(25, 1, cache_read=2048), 15)),
        Reply(sse=anthropic_stream(anthropic_usage(40, 1, cache_write=300), 500, words=80), event_delay=0.005),
        Reply(json_body={"error": {"message": "Rate limit reached", "type": "requests"}}, status=429),
    )
    gpt = instrument_openai(openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="k", max_retries=0))
    claude = instrument_anthropic(anthropic.Anthropic(base_url=server.base_url, api_key="k", max_retries=0))

    with usage_context(project_id="proj-acme", agent_name="support", session_id="sess-42"):
        gpt.chat.completions.create(model="gpt-4o", messages=ASK)
        list(gpt.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True))
        aborted = gpt.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True)
        next(iter(aborted))
        aborted.close()
        with pytest.raises(openai.APIError):
            list(gpt.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True))
        gpt.responses.create(model="o4-mini", input="Plan")
        list(gpt.responses.create(model="o4-mini", input="Plan", stream=True))
        with usage_context(agent_name="orders"), track_llm_call("resolve_order") as call:
            first = gpt.chat.completions.create(model="gpt-4o", messages=ASK)
            with call.tool(first.choices[0].message.tool_calls[0].function.name):
                pass
            gpt.chat.completions.create(model="gpt-4o", messages=ASK)

    with usage_context(project_id="proj-globex", agent_name="writer"):
        claude.messages.create(model=CLAUDE, max_tokens=64, messages=ASK)
        with claude.messages.stream(model=CLAUDE, max_tokens=64, messages=ASK) as stream:
            stream.until_done()

        async def abort_async_stream() -> None:
            async_claude = instrument_anthropic(
                anthropic.AsyncAnthropic(base_url=server.base_url, api_key="k", max_retries=0)
            )
            async with async_claude.messages.stream(model=CLAUDE, max_tokens=64, messages=ASK) as stream:
                async for _ in stream.text_stream:
                    break

        asyncio.run(abort_async_stream())
        with pytest.raises(openai.RateLimitError):
            gpt.chat.completions.create(model="gpt-4o", messages=ASK)
    gc.collect()


def test_every_call_stream_abort_and_round_trip_is_exactly_one_correct_event_on_the_broker(
    kafka_bootstrap: str, topics: dict[str, str], fake_provider: FakeProviderServer, tmp_path: Path
) -> None:
    local: list[UsageTrackingEvent] = []
    configure_usage_tracking(
        local.append,
        bootstrap_servers=kafka_bootstrap,
        topic=topics["events"],
        source="checkout-api",
        spool_dir=tmp_path / "spool",
    )

    run_every_kind_of_call(fake_provider)
    assert flush_usage_tracking(30)

    assert len(local) == 12
    delivered = read_topic(kafka_bootstrap, topics["events"], min_events=len(local))
    assert Counter(delivered.event_ids) == Counter(event.event_id for event in local)  # each exactly once
    assert all({event["project_id"] for event in batch} == {key} for key, batch in delivered.messages)
    by_id = {event["event_id"]: event for event in delivered.events}
    assert [by_id[event.event_id] for event in local] == [event.wire_dict() for event in local]
    assert usage_tracking_stats().delivered == 12 and usage_tracking_stats().spooled == 0

    splits = [
        (
            e.provider,
            e.method,
            e.finish_reason,
            e.usage.input_tokens,
            e.usage.output_tokens,
            e.usage.cache_read_tokens,
            e.usage.cache_write_tokens,
            e.usage.reasoning_tokens,
        )
        for e in local
    ]
    assert splits == [
        ("openai", "generate", "stop", 2006, 300, 1920, 0, 192),
        ("openai", "stream", "stop", 30, 5, 16, 0, 0),
        ("openai", "stream", "aborted", 0, 0, 0, 0, 0),
        ("openai", "stream", "aborted", 0, 0, 0, 0, 0),
        ("openai", "generate", "stop", 1200, 900, 1024, 0, 640),
        ("openai", "stream", "stop", 50, 20, 0, 0, 5),
        ("openai", "generate", "tool_calls", 100, 20, 0, 0, 0),
        ("openai", "generate", "stop", 160, 30, 100, 0, 0),
        ("anthropic", "generate", "end_turn", 4512, 6, 3000, 1500, 0),
        ("anthropic", "stream", "end_turn", 2073, 15, 2048, 0, 0),
        ("anthropic", "stream", "aborted", 340, 1, 0, 300, 0),
        ("openai", "generate", None, 0, 0, 0, 0, 0),
    ]
    assert all(e.error and "aborted" in e.error for e in local if e.finish_reason == "aborted")
    tool_round_trip = local[6]
    assert (tool_round_trip.operation, tool_round_trip.agent_name, tool_round_trip.handoff_chain) == (
        "resolve_order",
        "orders",
        ["support", "orders"],
    )
    assert (
        tool_round_trip.tool_calls[0].name == "lookup_order" and tool_round_trip.tool_calls[0].duration_ms is not None
    )
    assert {e.project_id for e in local} == {"proj-acme", "proj-globex"}
