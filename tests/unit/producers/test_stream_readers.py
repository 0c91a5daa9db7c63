"""Stream readers are pure: chunk dicts in, what the stream said so far out."""

from __future__ import annotations

from producers.provider_responses import (
    AnthropicStreamReader,
    OpenAIChatStreamReader,
    OpenAIResponsesStreamReader,
    describe_response,
)
from tests.unit.producers.provider_fakes import (
    anthropic_stream,
    anthropic_usage,
    openai_chat_stream,
    openai_chat_usage,
    openai_response,
    openai_responses_stream,
    openai_responses_usage,
)


def data_of(events):
    return [data for _name, data in events if isinstance(data, dict)]


def test_chat_reader_collects_tool_names_across_deltas_and_hides_only_its_usage_chunk() -> None:
    chunks = data_of(openai_chat_stream(openai_chat_usage(40, 12, cached=32), tool_call=("get_weather", '{"c":1}')))
    hiding, showing = OpenAIChatStreamReader(hide_usage_chunk=True), OpenAIChatStreamReader()

    passed = [hiding.observe(chunk) for chunk in chunks]
    assert all(showing.observe(chunk) for chunk in chunks)

    assert passed == [True] * (len(chunks) - 1) + [False]
    facts = hiding.facts()
    assert (facts.finish_reason, facts.tool_names, facts.usage.usage.cache_read_tokens) == (
        "tool_calls",
        ["get_weather"],
        32,
    )


def test_chat_reader_without_a_usage_chunk_has_no_usage() -> None:
    reader = OpenAIChatStreamReader()
    for chunk in data_of(openai_chat_stream(openai_chat_usage(1, 1)))[:-1]:
        reader.observe(chunk)

    assert reader.facts().usage is None and reader.facts().finish_reason == "stop"


def test_responses_reader_takes_the_terminal_response_or_what_came_before() -> None:
    events = data_of(openai_responses_stream(openai_responses_usage(50, 20, reasoning=5)))
    partial, complete = OpenAIResponsesStreamReader(), OpenAIResponsesStreamReader()
    for event in events[:-1]:
        partial.observe(event)
    for event in events:
        complete.observe(event)

    assert partial.facts().usage is None and partial.facts().model == "o4-mini-2025-04-16"
    assert complete.facts().usage.usage.reasoning_tokens == 5


def test_anthropic_reader_merges_start_usage_with_cumulative_output() -> None:
    reader = AnthropicStreamReader()
    events = data_of(anthropic_stream(anthropic_usage(25, 1, cache_read=2048, cache_write=100), 15, tool_use="search"))
    for event in events[:3]:
        reader.observe(event)
    early = reader.facts().usage.usage
    for event in events[3:]:
        reader.observe(event)
    final = reader.facts()

    assert (early.input_tokens, early.output_tokens) == (2173, 1)
    assert (final.usage.usage.input_tokens, final.usage.usage.output_tokens) == (2173, 15)
    assert (final.finish_reason, final.tool_names) == ("tool_use", ["search"])


def test_unknown_shapes_are_not_guessed() -> None:
    assert describe_response({"usage": {"tokens": 5}}) is None
    assert describe_response(openai_response(openai_responses_usage(1, 1))).usage.usage.input_tokens == 1
