"""One HTTP round trip of an instrumented SDK client, from request to its single event.

A plain response is read at once. A stream is watched chunk by chunk: it is reported
when it ends, however it ends — read to the end, failed, closed early, dropped by the
caller, or still open at interpreter exit — exactly once. Everything here runs guarded:
a bug in tracking is logged and the caller's call goes on untouched.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from producers.call import CallRecord, describe_error
from producers.llm_call import LlmCall, apply_facts, current_llm_call, finish_instrumented_call
from producers.provider_responses import ResponseFacts
from producers.tracking import forget_open_call, track_open_call

log = logging.getLogger("producers.instrument")

ABORTED = "aborted"


class StreamReader(Protocol):
    """Reads a stream's chunks; see `producers.provider_responses`."""

    chunks: int

    def observe(self, chunk: Any) -> bool: ...

    def facts(self) -> ResponseFacts: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A tracked API endpoint: how to read its responses and its streams."""

    name: str
    describe: Callable[[Any], ResponseFacts]
    stream_reader: Callable[[bool], StreamReader]


class RoundTrip:
    """The call record of one request, and how to finish it once."""

    def __init__(self, provider: str, endpoint: Endpoint, body: Any, streaming: bool) -> None:
        self.endpoint = endpoint
        model = body.get("model") if isinstance(body, dict) else None
        self.record = CallRecord(
            provider=provider,
            model=model if isinstance(model, str) else None,
            method="stream" if streaming else "generate",
        )
        self.scope: LlmCall | None = current_llm_call()
        if self.scope is not None:
            self.scope.instrumented_call_started()
        self._lock = threading.Lock()
        self.done = False

    def failed(self, error: BaseException) -> None:
        """The request raised: a failed call is still an event."""
        self.record.fail(error)
        self.finish()

    def completed(self, response: Any) -> None:
        """A plain (non-stream) response arrived."""
        apply_facts(self.record, self.endpoint.describe(response))
        self.finish(response)

    def finish(self, response: Any = None) -> None:
        """Report the event; only the first call does anything."""
        with self._lock:
            if self.done:
                return
            self.done = True
        self.record.finish()
        finish_instrumented_call(self.record, self.scope, response)


class StreamWatch:
    """Watches one stream's chunks and reports its round trip when the stream ends."""

    def __init__(self, trip: RoundTrip, reader: StreamReader) -> None:
        self.trip = trip
        self.reader = reader
        # True while the SDK's own iterator runs: a response close then is its normal end.
        self.inside = False
        track_open_call(self)

    def observe(self, chunk: Any) -> bool:
        """Read one chunk; whether the caller should see it."""
        try:
            return self.reader.observe(chunk)
        except Exception:  # noqa: BLE001 - never break the caller's stream
            log.exception("reading a stream chunk for usage failed")
            return True

    def completed(self) -> None:
        """The stream was read to its end."""
        if self.trip.done:
            return
        facts = self.reader.facts()
        apply_facts(self.trip.record, facts)
        if facts.usage is None and self.trip.record.error is None:
            self.trip.record.fail(
                f"stream ended after {self.reader.chunks} chunks without reporting usage; "
                "tokens unknown (the provider or gateway did not send a usage chunk)"
            )
        self._finish()

    def aborted(self, error: BaseException | None, reason: str) -> None:
        """The stream ended early: report what was seen, marked partial."""
        if self.trip.done:
            return
        facts = self.reader.facts()
        record = self.trip.record
        apply_facts(record, facts)
        record.finish_reason = ABORTED
        usage_state = "partial usage" if facts.usage is not None else "no usage reported yet"
        detail = describe_error(error) if error is not None else reason
        record.error = f"stream aborted after {self.reader.chunks} chunks ({usage_state}): {detail}"
        record.provider_metadata.update(
            stream_aborted=True, chunks_received=self.reader.chunks, usage_complete=False
        )
        self._finish()

    def abandon_at_exit(self) -> None:
        """The process is exiting with the stream still open."""
        self.aborted(None, "the stream was still open at interpreter exit")

    def _finish(self) -> None:
        forget_open_call(self)
        self.trip.finish()


def guarded(what: str, action: Callable[..., Any], *args: Any) -> Any:
    """Run tracking code; log instead of raising if it fails."""
    try:
        return action(*args)
    except Exception:  # noqa: BLE001 - tracking must never break the caller's call
        log.exception("usage tracking failed while %s; the LLM call itself is unaffected", what)
        return None


def watch_sync_stream(stream: Any, watch: StreamWatch) -> None:
    """Route a sync SDK stream's chunks through `watch` and catch every way it can end."""
    inner = stream._iterator
    stream._iterator = _watched_iterator(inner, watch)
    _hook_response_close(stream.response, watch)
    _report_when_dropped(stream, watch)


def watch_async_stream(stream: Any, watch: StreamWatch) -> None:
    """`watch_sync_stream` for the async SDK clients."""
    inner = stream._iterator
    stream._iterator = _watched_async_iterator(inner, watch)
    _hook_response_aclose(stream.response, watch)
    _report_when_dropped(stream, watch)


def _report_when_dropped(stream: Any, watch: StreamWatch) -> None:
    # A stream never iterated has no running generator to close: only its collection
    # shows it was dropped. At exit, `abandon_at_exit` reports open streams instead.
    finalizer = weakref.finalize(stream, _dropped, watch)
    finalizer.atexit = False


def _dropped(watch: StreamWatch) -> None:
    guarded("reporting a dropped stream", watch.aborted, None, "the stream was dropped before it ended")


def _watched_iterator(inner: Iterator[Any], watch: StreamWatch) -> Iterator[Any]:
    try:
        while True:
            watch.inside = True
            try:
                chunk = next(inner)
            except StopIteration:
                guarded("finishing a stream", watch.completed)
                return
            except BaseException as exc:
                guarded("reporting a failed stream", watch.aborted, exc, "")
                raise
            finally:
                watch.inside = False
            if watch.observe(chunk):
                yield chunk
    except GeneratorExit:
        guarded("reporting a closed stream", watch.aborted, None, "closed by the caller before the end")
        watch.inside = True
        try:
            inner.close()
        finally:
            watch.inside = False
        raise


async def _watched_async_iterator(inner: AsyncIterator[Any], watch: StreamWatch) -> AsyncIterator[Any]:
    try:
        while True:
            watch.inside = True
            try:
                chunk = await inner.__anext__()
            except StopAsyncIteration:
                guarded("finishing a stream", watch.completed)
                return
            except BaseException as exc:
                guarded("reporting a failed stream", watch.aborted, exc, "")
                raise
            finally:
                watch.inside = False
            if watch.observe(chunk):
                yield chunk
    except GeneratorExit:
        guarded("reporting a closed stream", watch.aborted, None, "closed by the caller before the end")
        watch.inside = True
        try:
            await inner.aclose()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - closing an already broken stream
            pass
        finally:
            watch.inside = False
        raise


def _hook_response_close(response: Any, watch: StreamWatch) -> None:
    # Stream helpers (`client.chat.completions.stream()`, `client.messages.stream()`)
    # close the HTTP response directly: that is where an early close shows.
    original = response.close

    def close() -> None:
        if not watch.inside:
            guarded("reporting a closed stream", watch.aborted, None, "closed by the caller before the end")
        original()

    response.close = close


def _hook_response_aclose(response: Any, watch: StreamWatch) -> None:
    original = response.aclose

    async def aclose() -> None:
        if not watch.inside:
            guarded("reporting a closed stream", watch.aborted, None, "closed by the caller before the end")
        await original()

    response.aclose = aclose
