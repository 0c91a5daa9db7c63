"""A local fake of the OpenAI and Anthropic HTTP APIs, for driving the real SDK clients.

`FakeProviderServer` listens on 127.0.0.1 (no network) and answers each request with the
next scripted `Reply`: a JSON body or a Server-Sent-Events stream, shaped like the
providers' documented responses (the builders below). It records every request, so
tests can check what the instrumented client sent (e.g. `stream_options.include_usage`).

Chat streams honour `include_usage` like the real API: the usage chunk is sent only
when the request asked for it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CREATED = 1_741_569_952


@dataclass
class Reply:
    """One scripted answer. `sse` events are (event name or None, data dict or raw text)."""

    json_body: Any = None
    sse: list[tuple[str | None, Any]] | None = None
    status: int = 200
    # Stop after this many SSE events and cut the connection mid-body (a broken stream).
    cut_after: int | None = None
    # Seconds between SSE events, so a test can stop reading in the middle.
    event_delay: float = 0.0


@dataclass
class RecordedRequest:
    """What the client sent."""

    method: str
    path: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakeProviderServer:
    """Scripted HTTP server for the OpenAI and Anthropic SDKs (see module docstring)."""

    def __init__(self) -> None:
        self.replies: queue.Queue[Reply] = queue.Queue()
        self.requests: list[RecordedRequest] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                server.requests.append(RecordedRequest("POST", self.path, body, dict(self.headers)))
                try:
                    reply = server.replies.get_nowait()
                except queue.Empty:
                    reply = Reply(json_body={"error": {"message": "no reply scripted"}}, status=500)
                server._answer(self, reply, body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *replies: Reply) -> None:
        """Queue the answers to the next requests, in order."""
        for reply in replies:
            self.replies.put(reply)

    def __enter__(self) -> FakeProviderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler, reply: Reply, request_body: Any) -> None:
        if reply.sse is None:
            payload = json.dumps(reply.json_body).encode()
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("x-request-id", "req_fake")
            handler.end_headers()
            handler.wfile.write(payload)
            return
        events = [event for event in reply.sse if _wanted(event, request_body)]
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        if reply.cut_after is not None:
            # Promise more than is sent, then hang up: the client sees a broken body.
            handler.send_header("Content-Length", str(10**7))
        else:
            handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            for number, (name, data) in enumerate(events):
                if reply.cut_after is not None and number >= reply.cut_after:
                    break
                handler.wfile.write(_sse_bytes(name, data))
                handler.wfile.flush()
                if reply.event_delay:
                    time.sleep(reply.event_delay)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client stopped reading: that is what some tests do
        handler.close_connection = True


_USAGE_CHUNK = "__usage_chunk__"


def _wanted(event: tuple[str | None, Any], request_body: Any) -> bool:
    name, _ = event
    if name != _USAGE_CHUNK:
        return True
    options = (request_body or {}).get("stream_options") or {}
    return options.get("include_usage") is True


def _sse_bytes(name: str | None, data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    lines = []
    if name and name != _USAGE_CHUNK:
        lines.append(f"event: {name}")
    lines.append(f"data: {text}")
    return ("\n".join(lines) + "\n\n").encode()


# -- OpenAI chat completions -----------------------------------------------------------


def openai_chat_usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    """`usage` of a chat completion: prompt includes cached, completion includes reasoning."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_chat_completion(
    usage: dict[str, Any],
    *,
    model: str = "gpt-4o-2024-08-06",
    content: str | None = "Hello! How can I help you today?",
    tool_calls: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """A `chat.completion` body; `tool_calls` are (name, JSON arguments) pairs."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    finish = "stop"
    if tool_calls:
        message["content"] = None
        message["tool_calls"] = [
            {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": arguments}}
            for n, (name, arguments) in enumerate(tool_calls)
        ]
        finish = "tool_calls"
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": "fp_f9f4fb6dbf",
    }


def openai_chat_stream(
    usage: dict[str, Any],
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    words: int = 5,
    tool_call: tuple[str, str] | None = None,
) -> list[tuple[str | None, Any]]:
    """SSE events of a streamed chat completion; the usage chunk only if asked for."""
    base = {
        "id": "chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_44709d6fcb",
        "service_tier": "default",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": "", "refusal": None}))]
    if tool_call:
        name, arguments = tool_call
        events.append(
            (
                None,
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_s1",
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                ),
            )
        )
        events.append((None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]})))
        events.append((None, chunk({}, "tool_calls")))
    else:
        events += [(None, chunk({"content": f"word{n} "})) for n in range(words)]
        events.append((None, chunk({}, "stop")))
    events.append((_USAGE_CHUNK, {**base, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return events


def openai_stream_error() -> tuple[str | None, Any]:
    """An error in the middle of a chat stream, as the API sends it."""
    return (
        None,
        {"error": {"message": "The server had an error while processing your request.", "type": "server_error"}},
    )


# -- OpenAI Responses API --------------------------------------------------------------


def openai_responses_usage(
    input_tokens: int, output_tokens: int, cached: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    """`usage` of a Response: input includes cached, output includes reasoning."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def openai_response(
    usage: dict[str, Any] | None,
    *,
    model: str = "o4-mini-2025-04-16",
    status: str = "completed",
    function_call: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A Responses API `response` object."""
    output: list[dict[str, Any]] = [{"type": "reasoning", "id": "rs_6876cf02e0bc8192", "summary": []}]
    if function_call:
        name, arguments = function_call
        output.append(
            {
                "type": "function_call",
                "id": "fc_12345xyz",
                "call_id": "call_12345xyz",
                "name": name,
                "arguments": arguments,
                "status": "completed",
            }
        )
    else:
        output.append(
            {
                "type": "message",
                "id": "msg_67ccd3acc8d48190",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Here is the answer.", "annotations": []}],
            }
        )
    return {
        "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "medium", "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def openai_responses_stream(
    usage: dict[str, Any], *, model: str = "o4-mini-2025-04-16", words: int = 4
) -> list[tuple[str | None, Any]]:
    """SSE events of a streamed Response, ending in `response.completed` with usage."""
    in_progress = {**openai_response(None, model=model, status="in_progress"), "output": []}
    final = openai_response(usage, model=model)
    message = final["output"][1]
    events: list[tuple[str | None, Any]] = [
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": in_progress}),
        ("response.in_progress", {"type": "response.in_progress", "sequence_number": 1, "response": in_progress}),
        (
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "sequence_number": 2,
                "output_index": 1,
                "item": {**message, "status": "in_progress", "content": []},
            },
        ),
    ]
    for n in range(words):
        events.append(
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": 3 + n,
                    "item_id": message["id"],
                    "output_index": 1,
                    "content_index": 0,
                    "delta": f"word{n} ",
                    "logprobs": [],
                },
            )
        )
    events.append(
        ("response.completed", {"type": "response.completed", "sequence_number": 3 + words, "response": final})
    )
    return events


# -- Anthropic Messages ----------------------------------------------------------------


def anthropic_usage(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0) -> dict[str, Any]:
    """`usage` of a Message: `input_tokens` EXCLUDES the cache reads and writes."""
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def anthropic_message(
    usage: dict[str, Any],
    *,
    model: str = "claude-haiku-4-5-20251001",
    tool_use: tuple[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Messages API `message` body."""
    content: list[dict[str, Any]] = [{"type": "text", "text": "I'll check that for you."}]
    stop_reason = "end_turn"
    if tool_use:
        name, tool_input = tool_use
        content.append({"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": name, "input": tool_input})
        stop_reason = "tool_use"
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def anthropic_stream(
    start_usage: dict[str, Any],
    output_tokens: int,
    *,
    model: str = "claude-haiku-4-5-20251001",
    words: int = 4,
    tool_use: str | None = None,
) -> list[tuple[str | None, Any]]:
    """SSE events of a streamed Message: input usage at start, cumulative output at the end."""
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**start_usage, "output_tokens": 1},
        },
    }
    events: list[tuple[str | None, Any]] = [
        ("message_start", start),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("ping", {"type": "ping"}),
    ]
    for n in range(words):
        events.append(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"word{n} "}},
            )
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    stop_reason = "end_turn"
    if tool_use:
        events += [
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                        "name": tool_use,
                        "input": {},
                    },
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ]
        stop_reason = "tool_use"
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def anthropic_stream_error() -> tuple[str | None, Any]:
    """An error event in the middle of a Messages stream."""
    return ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def anthropic_error_body() -> dict[str, Any]:
    """A 4xx/5xx error body of the Messages API."""
    return {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: field required"}}


def request_bodies(server: FakeProviderServer) -> Iterator[Any]:
    """The JSON bodies the server received, in order."""
    return (request.body for request in server.requests)
