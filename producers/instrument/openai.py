"""`instrument_openai(client)`: every chat completion and Responses API call becomes an event.

Works on `openai.OpenAI` and `openai.AsyncOpenAI` (and `AzureOpenAI`, and the same SDK
pointed at an OpenAI-compatible gateway: pass `provider=`). Tracked: `POST /chat/completions`
and `POST /responses`, plain and streamed, through any helper (`create`, `parse`,
`stream()`, `with_raw_response`). Chat streams are made to report usage
(`stream_options.include_usage`); the extra usage-only chunk is hidden from the caller
when the caller did not ask for it, so the stream looks unchanged.

The `openai` package is imported here only, when a client is instrumented.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlsplit

from producers.instrument._client_hooks import ClientHooks, instrument_client
from producers.instrument._round_trip import Endpoint
from producers.provider_responses import (
    OpenAIChatStreamReader,
    OpenAIResponsesStreamReader,
    describe_openai_chat,
    describe_openai_response,
)

C = TypeVar("C")

CHAT_COMPLETIONS = Endpoint(
    "chat.completions",
    describe_openai_chat,
    lambda hide_usage_chunk: OpenAIChatStreamReader(hide_usage_chunk=hide_usage_chunk),
)
RESPONSES = Endpoint("responses", describe_openai_response, lambda _hide: OpenAIResponsesStreamReader())
_ENDPOINTS = {"/chat/completions": CHAT_COMPLETIONS, "/responses": RESPONSES}
# Gateways that speak the OpenAI API but bill as themselves.
_KNOWN_HOSTS = {"openrouter.ai": "openrouter", "api.groq.com": "groq", "api.deepseek.com": "deepseek",
                "api.x.ai": "x-ai", "api.mistral.ai": "mistral", "api.together.xyz": "together"}


def instrument_openai(client: C, *, provider: str | None = None) -> C:
    """Track every LLM call `client` makes; returns the same client.

    `provider` names who bills the calls (default: inferred from the client's base URL —
    `openai`, `azure`, `openrouter`, ... — and `openai` otherwise). Instrumenting twice
    is harmless; `producers.instrument.uninstrument(client)` undoes it.
    """
    import openai

    hooks = ClientHooks(
        provider=provider or infer_openai_provider(str(getattr(client, "base_url", ""))),
        endpoint_for=openai_endpoint,
        prepare=request_usage_on_streams,
        sync_stream_type=openai.Stream,
        async_stream_type=openai.AsyncStream,
    )
    return instrument_client(client, hooks)


def openai_endpoint(options: Any) -> Endpoint | None:
    """The tracked endpoint a request goes to, or None (files, embeddings, retrieval...)."""
    if str(getattr(options, "method", "")).lower() != "post":
        return None
    path = str(getattr(options, "url", "")).split("?", 1)[0]
    return _ENDPOINTS.get(path)


def request_usage_on_streams(options: Any, endpoint: Endpoint) -> tuple[Any, bool]:
    """Ask a chat stream to end with a usage chunk; returns (options, hide that chunk).

    Without `include_usage` a chat stream carries no usage at all, and would be billed
    as zero: the failure that made one proxy log $1.47 for a ~€830 bill. The chunk is
    hidden from the caller only when we were the ones asking for it.
    """
    body = getattr(options, "json_data", None)
    if endpoint is not CHAT_COMPLETIONS or not isinstance(body, dict) or body.get("stream") is not True:
        return options, False
    stream_options = body.get("stream_options")
    stream_options = dict(stream_options) if isinstance(stream_options, dict) else {}
    if stream_options.get("include_usage") is True:
        return options, False
    prepared = options.model_copy()
    prepared.json_data = {**body, "stream_options": {**stream_options, "include_usage": True}}
    return prepared, True


def infer_openai_provider(base_url: str) -> str:
    """`openai`, or the gateway an OpenAI-compatible base URL belongs to."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host.endswith(".openai.azure.com") or "azure" in host:
        return "azure"
    for known, provider in _KNOWN_HOSTS.items():
        if host == known or host.endswith("." + known):
            return provider
    return "openai"
