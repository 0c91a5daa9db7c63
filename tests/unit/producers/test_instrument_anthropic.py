"""`instrument_anthropic` on the real `anthropic` SDK against a local fake API: cache tokens counted in."""

from __future__ import annotations

import asyncio

import pytest

from producers import instrument_anthropic, track_llm_call
from tests.factories import token_split as split
from tests.unit.producers.provider_fakes import (
    FakeProviderServer,
    Reply,
    anthropic_error_body,
    anthropic_message,
    anthropic_stream,
    anthropic_stream_error,
    anthropic_usage,
)

anthropic = pytest.importorskip("anthropic")

MODEL = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Summarise the attached contract."}]



def client(server: FakeProviderServer) -> anthropic.Anthropic:
    return instrument_anthropic(anthropic.Anthropic(base_url=server.base_url, api_key="sk-ant-test", max_retries=0))


def async_client(server: FakeProviderServer) -> anthropic.AsyncAnthropic:
    return instrument_anthropic(
        anthropic.AsyncAnthropic(base_url=server.base_url, api_key="sk-ant-test", max_retries=0)
    )


def test_a_message_counts_cache_reads_and_writes_into_input(events, fake_provider) -> None:
    fake_provider.script(Reply(json_body=anthropic_message(anthropic_usage(12, 6, cache_read=3000, cache_write=1500))))

    message = client(fake_provider).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)

    assert message.usage.input_tokens == 12  # the SDK's own count excludes the cache
    (event,) = events
    assert split(event) == (4512, 6, 3000, 1500, 0)
    assert (event.provider, event.model, event.finish_reason) == ("anthropic", "claude-haiku-4-5-20251001", "end_turn")
    assert event.provider_metadata["cache_write_5m_tokens"] == 1500


def test_streams_through_create_and_the_stream_helper(events, fake_provider) -> None:
    fake_provider.script(
        Reply(sse=anthropic_stream(anthropic_usage(25, 1, cache_read=2048), output_tokens=15)),
        Reply(sse=anthropic_stream(anthropic_usage(40, 1, cache_write=512), output_tokens=9)),
    )
    sdk = client(fake_provider)

    kinds = [event.type for event in sdk.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)]
    with sdk.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)

    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and text.startswith("word0")
    assert [(split(e), e.method, e.finish_reason) for e in events] == [
        ((2073, 15, 2048, 0, 0), "stream", "end_turn"),
        ((552, 9, 0, 512, 0), "stream", "end_turn"),
    ]


def test_an_aborted_stream_keeps_the_input_it_saw_and_is_marked(events, fake_provider) -> None:
    fake_provider.script(
        Reply(sse=anthropic_stream(anthropic_usage(25, 1, cache_read=2048), 300, words=60), event_delay=0.005)
    )

    with client(fake_provider).messages.stream(model=MODEL, max_tokens=512, messages=MESSAGES) as stream:
        for number, _text in enumerate(stream.text_stream):
            if number == 2:
                break

    (event,) = events
    assert event.finish_reason == "aborted" and "partial usage" in event.error
    assert (event.usage.input_tokens, event.usage.cache_read_tokens) == (2073, 2048)
    assert event.provider_metadata["usage_complete"] is False


def test_an_error_event_mid_stream_is_one_aborted_event_and_raises(events, fake_provider) -> None:
    sse = anthropic_stream(anthropic_usage(25, 1), 15)
    fake_provider.script(Reply(sse=[*sse[:4], anthropic_stream_error()]))

    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        list(client(fake_provider).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True))

    (event,) = events
    assert event.finish_reason == "aborted" and "Overloaded" in event.error and event.usage.input_tokens == 25


def test_each_tool_round_trip_is_its_own_event(events, fake_provider) -> None:
    fake_provider.script(
        Reply(
            json_body=anthropic_message(
                anthropic_usage(300, 40, cache_write=2000), tool_use=("get_weather", {"city": "Paris"})
            )
        ),
        Reply(sse=anthropic_stream(anthropic_usage(20, 1, cache_read=2000), 25, tool_use=None)),
    )
    sdk = client(fake_provider)

    with track_llm_call("weather_turn") as call:
        first = sdk.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
        tool_use = next(block for block in first.content if block.type == "tool_use")
        with call.tool(tool_use.name):
            pass
        with sdk.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
            stream.until_done()

    assert [(split(e)[:4], e.finish_reason) for e in events] == [
        ((2300, 40, 0, 2000), "tool_use"),
        ((2020, 25, 2000, 0), "end_turn"),
    ]
    assert [t.name for t in events[0].tool_calls] == ["get_weather"] and events[0].tool_calls[0].duration_ms is not None


def test_tool_use_blocks_in_a_stream_are_counted(events, fake_provider) -> None:
    fake_provider.script(Reply(sse=anthropic_stream(anthropic_usage(10, 1), 30, tool_use="lookup_order")))

    with client(fake_provider).messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        stream.get_final_message()

    assert [(t.name, e.finish_reason) for e in events for t in e.tool_calls] == [("lookup_order", "tool_use")]


def test_api_errors_are_failed_events_and_token_counting_is_not_a_call(events, fake_provider) -> None:
    fake_provider.script(
        Reply(json_body=anthropic_error_body(), status=400),
        Reply(json_body={"input_tokens": 2095}),
    )
    sdk = client(fake_provider)

    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.create(model=MODEL, max_tokens=256, messages=[])
    sdk.messages.count_tokens(model=MODEL, messages=MESSAGES)

    (event,) = events
    assert event.model == MODEL and "BadRequestError" in event.error


def test_a_failing_handler_never_breaks_a_stream(fake_provider) -> None:
    from producers import configure_usage_tracking

    configure_usage_tracking(lambda event: 1 / 0, destination=None)
    fake_provider.script(Reply(sse=anthropic_stream(anthropic_usage(10, 1), 5)))

    with client(fake_provider).messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        message = stream.get_final_message()

    assert message.usage.output_tokens == 5


def test_async_client_calls_streams_and_aborts(events, fake_provider) -> None:
    fake_provider.script(
        Reply(json_body=anthropic_message(anthropic_usage(5, 5, cache_read=10))),
        Reply(sse=anthropic_stream(anthropic_usage(7, 1, cache_write=3), 8)),
        Reply(sse=anthropic_stream(anthropic_usage(9, 1), 300, words=60), event_delay=0.005),
    )

    async def main() -> None:
        sdk = async_client(fake_provider)
        await sdk.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        async with sdk.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
            await stream.get_final_message()
        async with sdk.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
            async for _text in stream.text_stream:
                break

    asyncio.run(main())

    assert [(split(e)[:4], e.method, e.finish_reason) for e in events] == [
        ((15, 5, 10, 0), "generate", "end_turn"),
        ((10, 8, 0, 3), "stream", "end_turn"),
        ((9, 1, 0, 0), "stream", "aborted"),
    ]
