"""Chunks of a Faust stream closed by message count or bytes (`ChunkLimits`), acked after use.

Faust's `Stream.take_events(max_, within)` closes a chunk on a number of messages
only. This is the same generator (faust-streaming 0.15, `faust/streams.py`) with that
one rule replaced: a chunk closes before a message that would take it past either
limit, or when it reaches one, or `within` seconds after its first message. And the next
chunk fills while the loop body writes this one (Faust's method stops taking until the
body returns, then waits `within` again). As Faust does it: the stream's own acks are off while chunks are taken,
each chunk's events are acked only after the loop body has returned (so the offsets of
a chunk are committed only once it is written), and a message that does not fit waits,
unacked, for the next chunk.

It reaches into the stream as Faust's method does (`add_processor`, `_enable_passive`,
`_processors`, `_active_agens`); pyproject pins faust-streaming below 0.16 for that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from mode.utils.aiter import aiter

from stream_app.core.chunk_limits import ChunkLimits


def take_chunks(stream: Any, limits: ChunkLimits, within: float) -> AsyncGenerator[Sequence[Any], None]:
    """Chunks of the stream's events; registered with the stream so stopping it closes the generator."""
    agen = _take_chunks(stream, limits, within)
    stream._active_agens.add(agen)  # noqa: SLF001 - as Faust's own take_events does
    return agen


def message_bytes(event: Any) -> int:
    """What one message costs a chunk: its key and value as they came off the wire."""
    message = event.message
    return len(message.value or b"") + len(message.key or b"")


async def _take_chunks(stream: Any, limits: ChunkLimits, within: float) -> AsyncGenerator[Sequence[Any], None]:
    # The chunk filling while the loop body writes the one before it: taking the next
    # messages off the stream overlaps with the write, so a worker never waits for Kafka
    # between two chunks (the consumer's queue is a few messages: it is bounded in bytes).
    filling: list[Any] = []
    held = 0
    started_at = 0.0  # loop time of the filling chunk's first message
    buffer_full = asyncio.Event()
    buffer_taken = asyncio.Event()
    stream_enable_acks = stream.enable_acks
    channel_it = aiter(stream.channel)

    async def wait_until_taken() -> None:
        """The filling chunk is complete: wait until the loop below takes it (not until it is written)."""
        buffer_full.set()
        buffer_taken.clear()
        await stream.wait(buffer_taken)

    async def add_to_buffer(value: Any) -> Any:
        nonlocal held, started_at
        try:
            event = stream.current_event
            if event is None:
                raise RuntimeError("take_chunks found current_event is None")
            size = message_bytes(event)
            if limits.closes_before(len(filling), held, size):
                await wait_until_taken()
            if not filling:
                started_at = stream.loop.time()
            filling.append(event)
            held += size
            if limits.is_full(len(filling), held):
                await wait_until_taken()
        except asyncio.CancelledError:  # pragma: no cover
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False
    stream.add_processor(add_to_buffer)
    stream._enable_passive(channel_it)  # noqa: SLF001 - as Faust's own take_events does
    try:
        while not stream.should_stop:
            # `within` counts from the chunk's first message: a chunk that filled while
            # the last one was written is taken at once, not after another `within`.
            wait = within if not filling else within - (stream.loop.time() - started_at)
            if wait > 0 and not buffer_full.is_set():
                await stream.wait_for_stopped(buffer_full, timeout=wait)
            if not filling:
                continue
            # Take the chunk; the processor starts the next one at once.
            chunk, filling, held = filling, [], 0
            buffer_full.clear()
            buffer_taken.set()
            try:
                yield chunk
            finally:
                # Acked (and so committed) only once the loop body has returned: written.
                for event in chunk:
                    await stream.ack(event)
    finally:
        stream.enable_acks = stream_enable_acks
        stream._processors.remove(add_to_buffer)  # noqa: SLF001 - as Faust's own take_events does
