"""`instrument_anthropic(client)`: every Messages API call becomes an event, cache tokens included.

Works on `anthropic.Anthropic` and `anthropic.AsyncAnthropic` (and the Bedrock/Vertex
clients: pass `provider=`). Tracked: `POST /v1/messages` (beta too), plain and
streamed, through any helper (`create`, `stream()`, `with_raw_response`, tool runners:
every round trip is its own event). Anthropic's `input_tokens` excludes cache reads and
writes; events count them in (SPEC §1), see `producers.usage_mapping.usage_from_anthropic`.

The `anthropic` package is imported here only, when a client is instrumented.
"""

from __future__ import annotations

from typing import Any, TypeVar

from producers.instrument._client_hooks import ClientHooks, instrument_client
from producers.instrument._round_trip import Endpoint
from producers.provider_responses import AnthropicStreamReader, describe_anthropic_message

C = TypeVar("C")

MESSAGES = Endpoint("messages", describe_anthropic_message, lambda _hide: AnthropicStreamReader())


def instrument_anthropic(client: C, *, provider: str = "anthropic") -> C:
    """Track every LLM call `client` makes; returns the same client.

    `provider` names who bills the calls (`aws` for Bedrock, `google` for Vertex).
    Instrumenting twice is harmless; `producers.instrument.uninstrument(client)` undoes it.
    """
    import anthropic

    hooks = ClientHooks(
        provider=provider,
        endpoint_for=anthropic_endpoint,
        prepare=_unchanged,
        sync_stream_type=anthropic.Stream,
        async_stream_type=anthropic.AsyncStream,
    )
    return instrument_client(client, hooks)


def anthropic_endpoint(options: Any) -> Endpoint | None:
    """MESSAGES for message creation; None for token counting, batches, files, models."""
    if str(getattr(options, "method", "")).lower() != "post":
        return None
    path = str(getattr(options, "url", "")).split("?", 1)[0]
    return MESSAGES if path == "/v1/messages" else None


def _unchanged(options: Any, endpoint: Endpoint) -> tuple[Any, bool]:
    # Anthropic streams always report usage (message_start and message_delta).
    return options, False
