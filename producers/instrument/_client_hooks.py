"""Hook an SDK client's one request method, so every round trip is tracked, whatever API helper made it.

The OpenAI and Anthropic Python SDKs are generated alike: every API method — `create`,
`parse`, the `stream()` helpers, `with_raw_response`, tool runners — ends in
`client.request(cast_to, options, stream=..., stream_cls=...)`. Hooking that one method
on the client instance tracks all of them, sync and async, and nothing else in the
process is touched (no global monkey-patching). `with_options()`/`copy()` return
clients hooked the same way.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from producers.instrument._round_trip import (
    Endpoint,
    RoundTrip,
    StreamWatch,
    guarded,
    watch_async_stream,
    watch_sync_stream,
)
from producers.tracking import forget_open_call, track_open_call

C = TypeVar("C")

_MARK = "_usage_tracking_hooks"
_PATCHED = ("request", "copy", "with_options")


@dataclass(frozen=True, slots=True)
class ClientHooks:
    """What an SDK needs told: its provider, tracked endpoints, usage opt-in, stream types."""

    provider: str
    endpoint_for: Callable[[Any], Endpoint | None]
    prepare: Callable[[Any, Endpoint], tuple[Any, bool]]
    sync_stream_type: type
    async_stream_type: type


def instrument_client(client: C, hooks: ClientHooks) -> C:
    """Hook `client` (once; instrumenting it again changes nothing) and return it."""
    if getattr(client, _MARK, None) is not None:
        return client
    original_request = client.request  # type: ignore[attr-defined]
    if inspect.iscoroutinefunction(original_request):
        request = _async_request(original_request, hooks)
    else:
        request = _sync_request(original_request, hooks)
    original_copy = client.copy  # type: ignore[attr-defined]

    def copy(*args: Any, **kwargs: Any) -> Any:
        return instrument_client(original_copy(*args, **kwargs), hooks)

    client.request = request  # type: ignore[attr-defined]
    client.copy = copy  # type: ignore[attr-defined]
    client.with_options = copy  # type: ignore[attr-defined]
    setattr(client, _MARK, hooks)
    return client


def uninstrument_client(client: C) -> C:
    """Remove the hooks: the client behaves as it did before `instrument_*`."""
    if getattr(client, _MARK, None) is None:
        return client
    for name in (*_PATCHED, _MARK):
        client.__dict__.pop(name, None)
    return client


def _sync_request(original: Callable[..., Any], hooks: ClientHooks) -> Callable[..., Any]:
    def request(cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        started = guarded("starting to track a request", _start, hooks, options, kwargs)
        if started is None:
            return original(cast_to, options, *args, **kwargs)
        trip, prepared, hide_usage_chunk = started
        try:
            result = original(cast_to, prepared, *args, **kwargs)
        except BaseException as exc:
            guarded("reporting a failed request", trip.failed, exc)
            raise
        guarded("tracking a response", _track_result, trip, result, hide_usage_chunk, hooks)
        return result

    return request


def _async_request(original: Callable[..., Any], hooks: ClientHooks) -> Callable[..., Any]:
    async def request(cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        started = guarded("starting to track a request", _start, hooks, options, kwargs)
        if started is None:
            return await original(cast_to, options, *args, **kwargs)
        trip, prepared, hide_usage_chunk = started
        try:
            result = await original(cast_to, prepared, *args, **kwargs)
        except BaseException as exc:
            guarded("reporting a failed request", trip.failed, exc)
            raise
        guarded("tracking a response", _track_result, trip, result, hide_usage_chunk, hooks)
        return result

    return request


def _start(hooks: ClientHooks, options: Any, kwargs: dict[str, Any]) -> tuple[RoundTrip, Any, bool] | None:
    endpoint = hooks.endpoint_for(options)
    if endpoint is None:
        return None
    prepared, hide_usage_chunk = hooks.prepare(options, endpoint)
    body = getattr(prepared, "json_data", None)
    streaming = bool(kwargs.get("stream")) or (isinstance(body, dict) and body.get("stream") is True)
    return RoundTrip(hooks.provider, endpoint, body, streaming), prepared, hide_usage_chunk


def _track_result(trip: RoundTrip, result: Any, hide_usage_chunk: bool, hooks: ClientHooks) -> None:
    if isinstance(result, hooks.sync_stream_type):
        watch_sync_stream(result, StreamWatch(trip, trip.endpoint.stream_reader(hide_usage_chunk)))
    elif isinstance(result, hooks.async_stream_type):
        watch_async_stream(result, StreamWatch(trip, trip.endpoint.stream_reader(hide_usage_chunk)))
    elif _is_raw_response(result):
        _track_raw_response(trip, result, hide_usage_chunk, hooks)
    else:
        trip.completed(result)


def _is_raw_response(result: Any) -> bool:
    # A parsed response is a pydantic model: asking it for an attribute it lacks costs
    # microseconds (pydantic builds the AttributeError's message), so it is ruled out first.
    if isinstance(result, BaseModel):
        return False
    return hasattr(result, "http_response") and hasattr(result, "parse")


class _UnparsedRawResponse:
    """A `with_raw_response`/`with_streaming_response` result whose body is not read yet.

    Its usage is read when the caller parses it; if it never does, the event still goes
    out (when the response is collected, or at exit), saying the usage is unknown.
    """

    def __init__(self, trip: RoundTrip) -> None:
        self.trip = trip
        self.claimed = False
        track_open_call(self)

    def abandon_at_exit(self) -> None:
        self.never_parsed()

    def never_parsed(self) -> None:
        forget_open_call(self)
        if not self.claimed and not self.trip.done:
            self.trip.failed(RuntimeError("raw response never parsed: usage unknown"))

    def parsed(self, parsed: Any, hide_usage_chunk: bool, hooks: ClientHooks) -> None:
        if self.claimed:
            return
        self.claimed = True
        forget_open_call(self)
        _track_result(self.trip, parsed, hide_usage_chunk, hooks)


def _track_raw_response(trip: RoundTrip, raw: Any, hide_usage_chunk: bool, hooks: ClientHooks) -> None:
    if trip.record.method == "generate" and _read_body_now(trip, raw):
        return
    pending = _UnparsedRawResponse(trip)
    original_parse = raw.parse
    if inspect.iscoroutinefunction(original_parse):

        async def parse_async(*args: Any, **kwargs: Any) -> Any:
            parsed = await original_parse(*args, **kwargs)
            guarded("tracking a parsed response", pending.parsed, parsed, hide_usage_chunk, hooks)
            return parsed

        raw.parse = parse_async
    else:

        def parse(*args: Any, **kwargs: Any) -> Any:
            parsed = original_parse(*args, **kwargs)
            guarded("tracking a parsed response", pending.parsed, parsed, hide_usage_chunk, hooks)
            return parsed

        raw.parse = parse
    finalizer = weakref.finalize(raw, pending.never_parsed)
    finalizer.atexit = False


def _read_body_now(trip: RoundTrip, raw: Any) -> bool:
    """A raw non-stream response whose body is already in memory: read usage from its JSON."""
    try:
        data = raw.http_response.json()
    except Exception:  # noqa: BLE001 - not read yet (a streaming response) or not JSON
        return False
    trip.completed(data)
    return True
