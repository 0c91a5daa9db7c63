"""`instrument_openai` on the real `openai` SDK against a local fake API: one correct event per call."""

from __future__ import annotations

import asyncio
import gc

import pytest

from producers import instrument_openai, track_llm_call, usage_context
from producers.instrument import uninstrument
from tests.factories import token_split as split
from tests.unit.producers.provider_fakes import (
    FakeProviderServer,
    Reply,
    openai_chat_completion,
    openai_chat_stream,
    openai_chat_usage,
    openai_response,
    openai_responses_stream,
    openai_responses_usage,
    openai_stream_error,
)

openai = pytest.importorskip("openai")

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]



def client(server: FakeProviderServer, **options) -> openai.OpenAI:
    return instrument_openai(
        openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-test", max_retries=0, **options)
    )


def async_client(server: FakeProviderServer) -> openai.AsyncOpenAI:
    return instrument_openai(openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="sk-test", max_retries=0))


def test_chat_completion_is_one_event_with_cached_and_reasoning_split(events, fake_provider) -> None:
    fake_provider.script(
        Reply(json_body=openai_chat_completion(openai_chat_usage(2006, 300, cached=1920, reasoning=192)))
    )

    with usage_context(agent_name="weather-agent", session_id="sess-1"):
        completion = client(fake_provider).chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.choices[0].message.content.startswith("Hello")
    (event,) = events
    assert split(event) == (2006, 300, 1920, 0, 192)
    assert (event.provider, event.model, event.method) == ("openai", "gpt-4o-2024-08-06", "generate")
    assert (event.agent_name, event.session_id, event.finish_reason, event.error) == (
        "weather-agent",
        "sess-1",
        "stop",
        None,
    )
    assert event.duration_ms > 0 and event.provider_metadata["response_id"].startswith("chatcmpl-")


def test_a_chat_stream_asks_for_usage_and_hides_the_usage_chunk_it_asked_for(events, fake_provider) -> None:
    fake_provider.script(Reply(sse=openai_chat_stream(openai_chat_usage(30, 5, cached=16))))

    stream = client(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = list(stream)

    assert fake_provider.requests[-1].body["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks)  # code indexing choices[0] keeps working
    (event,) = events
    assert (split(event), event.method, event.finish_reason, event.error) == ((30, 5, 16, 0, 0), "stream", "stop", None)


def test_a_caller_who_asked_for_usage_still_gets_the_usage_chunk(events, fake_provider) -> None:
    fake_provider.script(Reply(sse=openai_chat_stream(openai_chat_usage(30, 5))))

    chunks = list(
        client(fake_provider).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )

    assert chunks[-1].usage.prompt_tokens == 30 and chunks[-1].choices == []
    assert len(events) == 1 and split(events[0])[:2] == (30, 5)


def test_the_stream_helper_is_tracked_once(events, fake_provider) -> None:
    fake_provider.script(Reply(sse=openai_chat_stream(openai_chat_usage(12, 4))))

    with client(fake_provider).chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        text = "".join(event.delta for event in stream if event.type == "content.delta")

    assert text.startswith("word0")
    assert [(split(e)[:2], e.method) for e in events] == [((12, 4), "stream")]


def test_a_stream_closed_early_is_one_partial_event_marked_aborted(events, fake_provider) -> None:
    fake_provider.script(Reply(sse=openai_chat_stream(openai_chat_usage(30, 50), words=50), event_delay=0.005))

    stream = client(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    for number, _chunk in enumerate(stream):
        if number == 3:
            break
    stream.close()

    (event,) = events
    assert event.finish_reason == "aborted"
    assert "stream aborted after 4 chunks (no usage reported yet)" in event.error
    assert event.provider_metadata["stream_aborted"] is True and event.provider_metadata["usage_complete"] is False


def test_a_stream_abandoned_without_close_is_reported_when_dropped(events, fake_provider) -> None:
    fake_provider.script(Reply(sse=openai_chat_stream(openai_chat_usage(30, 50), words=50), event_delay=0.005))

    stream = client(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    del stream
    gc.collect()

    (event,) = events
    assert event.finish_reason == "aborted"


def test_a_stream_never_read_is_still_one_event(events, fake_provider) -> None:
    fake_provider.script(Reply(sse=openai_chat_stream(openai_chat_usage(30, 5))))

    client(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    gc.collect()

    assert len(events) == 1 and events[0].finish_reason == "aborted"


def test_an_error_in_the_middle_of_a_stream_is_one_aborted_event_and_raises(events, fake_provider) -> None:
    sse = openai_chat_stream(openai_chat_usage(30, 5))
    fake_provider.script(Reply(sse=[*sse[:3], openai_stream_error()]))

    stream = client(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="server had an error"):
        list(stream)

    (event,) = events
    assert event.finish_reason == "aborted" and "APIError" in event.error


def test_a_connection_cut_mid_stream_is_one_aborted_event(events, fake_provider) -> None:
    fake_provider.script(Reply(sse=openai_chat_stream(openai_chat_usage(30, 5), words=10), cut_after=4))

    with pytest.raises(openai.APIError):
        list(client(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))

    assert len(events) == 1 and events[0].finish_reason == "aborted"


def test_an_api_error_is_a_failed_event_and_the_sdk_error_propagates(events, fake_provider) -> None:
    fake_provider.script(Reply(json_body={"error": {"message": "Rate limit reached", "type": "requests"}}, status=429))

    with pytest.raises(openai.RateLimitError):
        client(fake_provider).chat.completions.create(model="gpt-4o", messages=MESSAGES)

    (event,) = events
    assert event.model == "gpt-4o" and "RateLimitError" in event.error and split(event) == (0, 0, 0, 0, 0)


def test_responses_api_call_and_stream(events, fake_provider) -> None:
    fake_provider.script(
        Reply(json_body=openai_response(openai_responses_usage(1200, 900, cached=1024, reasoning=640))),
        Reply(sse=openai_responses_stream(openai_responses_usage(50, 20, cached=0, reasoning=5))),
    )
    sdk = client(fake_provider)

    sdk.responses.create(model="o4-mini", input="Plan a trip")
    deltas = [
        event.delta
        for event in sdk.responses.create(model="o4-mini", input="Plan", stream=True)
        if event.type == "response.output_text.delta"
    ]

    assert len(deltas) == 4
    assert [(split(e), e.method, e.finish_reason) for e in events] == [
        ((1200, 900, 1024, 0, 640), "generate", "stop"),
        ((50, 20, 0, 0, 5), "stream", "stop"),
    ]


def test_responses_function_call_and_incomplete_status(events, fake_provider) -> None:
    fake_provider.script(
        Reply(
            json_body=openai_response(openai_responses_usage(80, 20), function_call=("get_weather", '{"city":"Paris"}'))
        ),
        Reply(json_body=openai_response(openai_responses_usage(80, 4096), status="incomplete")),
    )
    sdk = client(fake_provider)

    sdk.responses.create(model="o4-mini", input="weather?")
    sdk.responses.create(model="o4-mini", input="essay")

    assert [(e.finish_reason, [t.name for t in e.tool_calls]) for e in events] == [
        ("tool_calls", ["get_weather"]),
        ("max_output_tokens", []),
    ]


def test_a_tool_loop_is_one_event_per_round_trip_with_tool_runs_attached(events, fake_provider) -> None:
    fake_provider.script(
        Reply(
            json_body=openai_chat_completion(
                openai_chat_usage(100, 20), tool_calls=[("get_weather", '{"city":"Paris"}')]
            )
        ),
        Reply(json_body=openai_chat_completion(openai_chat_usage(150, 30, cached=100))),
    )
    sdk = client(fake_provider)

    with track_llm_call("answer_weather") as call:
        first = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        for tool in first.choices[0].message.tool_calls:
            with call.tool(tool.function.name):
                pass
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert [split(e)[:3] for e in events] == [(100, 20, 0), (150, 30, 100)]
    assert [e.operation for e in events] == ["answer_weather", "answer_weather"]
    first_tools = events[0].tool_calls
    assert [t.name for t in first_tools] == ["get_weather"] and first_tools[0].duration_ms is not None
    assert events[1].tool_calls == [] and events[0].finish_reason == "tool_calls"


def test_a_failing_handler_never_breaks_the_instrumented_call(fake_provider) -> None:
    from producers import configure_usage_tracking

    errors = []
    configure_usage_tracking(lambda event: 1 / 0, on_error=lambda error, event: errors.append(error), destination=None)
    fake_provider.script(
        Reply(json_body=openai_chat_completion(openai_chat_usage(10, 2))),
        Reply(sse=openai_chat_stream(openai_chat_usage(10, 2))),
    )
    sdk = client(fake_provider)

    completion = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    chunks = list(sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))

    assert completion.usage.prompt_tokens == 10 and len(chunks) == 7
    assert [type(error) for error in errors] == [ZeroDivisionError, ZeroDivisionError]


def test_raw_responses_and_with_options_copies_are_tracked(events, fake_provider) -> None:
    fake_provider.script(
        Reply(json_body=openai_chat_completion(openai_chat_usage(11, 1))),
        Reply(json_body=openai_chat_completion(openai_chat_usage(22, 2))),
        Reply(sse=openai_chat_stream(openai_chat_usage(33, 3))),
    )
    sdk = client(fake_provider)

    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    raw.parse()
    sdk.with_options(timeout=5).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with sdk.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    ) as response:
        list(response.parse())

    assert [split(e)[0] for e in events] == [11, 22, 33]


def test_only_llm_calls_are_tracked_and_instrumenting_is_idempotent_and_undoable(events, fake_provider) -> None:
    fake_provider.script(
        Reply(
            json_body={
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        ),
        Reply(json_body=openai_chat_completion(openai_chat_usage(10, 2))),
        Reply(json_body=openai_chat_completion(openai_chat_usage(10, 2))),
    )
    sdk = instrument_openai(client(fake_provider))

    sdk.embeddings.create(model="text-embedding-3-small", input="hi")
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    uninstrument(sdk).chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert len(events) == 1


def test_async_client_calls_streams_and_aborts(events, fake_provider) -> None:
    fake_provider.script(
        Reply(json_body=openai_chat_completion(openai_chat_usage(10, 2, cached=4))),
        Reply(sse=openai_chat_stream(openai_chat_usage(20, 3))),
        Reply(sse=openai_chat_stream(openai_chat_usage(30, 50), words=50), event_delay=0.005),
        Reply(sse=openai_responses_stream(openai_responses_usage(40, 4, reasoning=2))),
    )

    async def main() -> None:
        sdk = async_client(fake_provider)
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        async for _ in await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            pass
        stream = await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        async for _ in stream:
            break
        await stream.close()
        async for _ in await sdk.responses.create(model="o4-mini", input="x", stream=True):
            pass

    asyncio.run(main())

    assert [(split(e)[:3], e.method, e.finish_reason) for e in events] == [
        ((10, 2, 4), "generate", "stop"),
        ((20, 3, 0), "stream", "stop"),
        ((0, 0, 0), "stream", "aborted"),
        ((40, 4, 0), "stream", "stop"),
    ]


def test_gateways_are_named_by_their_base_url(events, fake_provider) -> None:
    from producers.instrument.openai import infer_openai_provider

    assert infer_openai_provider("https://openrouter.ai/api/v1") == "openrouter"
    assert infer_openai_provider("https://my-res.openai.azure.com/openai") == "azure"
    assert infer_openai_provider("https://api.openai.com/v1") == "openai"
    fake_provider.script(Reply(json_body=openai_chat_completion({**openai_chat_usage(10, 2), "cost": 0.00042})))

    instrument_openai(
        openai.OpenAI(base_url=f"{fake_provider.base_url}/v1", api_key="k", max_retries=0), provider="openrouter"
    ).chat.completions.create(model="openai/gpt-4o", messages=MESSAGES)

    assert (events[0].provider, str(events[0].provider_cost)) == ("openrouter", "0.00042")
