"""The background sender's encoding stage: queued events to wire bytes, in short slices.

Encoding takes the sender a few microseconds of pure CPU per event under the GIL. Done
for a whole drained queue at once, that is milliseconds in which a caller's thread that
wants the GIL back must wait: CPython only forces the holder to let go after
`sys.getswitchinterval()` (5 ms), which is exactly the tail the SDK used to add to LLM
calls. So the work is cut into slices of at most `SLICE_SECONDS`, and between slices the
sender sleeps briefly: a blocking sleep releases the GIL for long enough that a waiting
thread really gets it (a zero-length release is usually won back by the releasing
thread, and restarts the waiter's 5 ms clock).

Drafts are valid by construction (tests/unit/producers/test_wire.py proves it over
generated calls, against the model and the shipped JSON Schema), so only one in
`CHECK_EVERY` is checked against the model here: a spot check that would show an SDK
bug in the service's log, without paying ~15 µs of CPU per event for it. Whatever
passes unchecked is checked by the worker, which dead-letters an invalid event with its
reason rather than lose it. Every CPU microsecond the sender spends is one a GIL-bound
service waits for, so it is spent sparingly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from producers.wire import EncodedEvent, EventDraft, encode_draft
from schemas import UsageTrackingEvent

log = logging.getLogger("producers.transport")

# Longest stretch of encoding between two chances for other threads to take the GIL.
SLICE_SECONDS = 0.0002
# Events encoded between two looks at the clock.
CHUNK_EVENTS = 4
# Asks for 1 µs; Linux's timer slack makes it ~50 µs: long enough for a thread waiting
# on the GIL to wake and take it, short enough to cost a lone sender little.
HANDOFF_SECONDS = 0.000001
# One draft in this many is checked against the model (see the module docstring).
CHECK_EVERY = 64
_INVALID_LOG_INTERVAL_SECONDS = 10.0

_VALIDATOR = UsageTrackingEvent.__pydantic_validator__
_LIST_VALIDATOR = TypeAdapter(list[UsageTrackingEvent])

QueuedItem = EventDraft | tuple[Any, ...] | UsageTrackingEvent


class EncodingStage:
    """Turns queued items (drafts, events) into `EncodedEvent`s, yielding the GIL as it goes."""

    def __init__(
        self,
        slice_seconds: float = SLICE_SECONDS,
        handoff_seconds: float = HANDOFF_SECONDS,
        check_every: int = CHECK_EVERY,
    ) -> None:
        self._slice = slice_seconds
        self._handoff = handoff_seconds
        self._check_every = check_every
        self._drafts_seen = 0
        self.invalid = 0
        self._last_invalid_log = 0.0

    def encode(self, items: Sequence[QueuedItem]) -> list[EncodedEvent]:
        """Every item encoded, in order (see `encode_one`)."""
        encoded: list[EncodedEvent] = []
        clock = time.perf_counter
        slice_ends = clock() + self._slice
        encode_one = self.encode_one
        for start in range(0, len(items), CHUNK_EVENTS):
            encoded.extend([encode_one(item) for item in items[start : start + CHUNK_EVENTS]])
            if clock() > slice_ends:
                self.hand_over()
                slice_ends = clock() + self._slice
        return encoded

    def encode_one(self, item: QueuedItem) -> EncodedEvent:
        """One item's wire bytes; a spot-checked draft that fails the model is still sent, and logged.

        Publishing it lets the pipeline dead-letter it with the reason, where it can be
        fixed and replayed, instead of losing a billed call.
        """
        if isinstance(item, UsageTrackingEvent):
            return EncodedEvent.of(item)
        encoded = encode_draft(item)
        self._drafts_seen += 1
        if self._drafts_seen % self._check_every == 0:
            try:
                _VALIDATOR.validate_json(encoded.json)
            except ValidationError as exc:
                self._invalid(encoded, exc)
        return encoded

    def decode_lines(self, lines: Sequence[bytes], where: str) -> tuple[list[EncodedEvent], int]:
        """Spooled lines checked against the model, in slices; (events as written, unreadable count).

        Replayed with the very bytes first written. Only a torn last line of a crashed
        writer should ever be unreadable: it is logged and skipped.
        """
        decoded: list[EncodedEvent] = []
        unreadable = 0
        clock = time.perf_counter
        slice_ends = clock() + self._slice
        for start in range(0, len(lines), CHUNK_EVENTS):
            chunk = lines[start : start + CHUNK_EVENTS]
            try:
                events = _LIST_VALIDATOR.validate_json(b"[" + b",".join(chunk) + b"]")
            except ValidationError:
                events = []
            if len(events) == len(chunk):
                decoded.extend(EncodedEvent(e.project_id, e.event_id, line) for e, line in zip(events, chunk))
            else:
                for number, line in enumerate(chunk, start=start + 1):
                    try:
                        event = _VALIDATOR.validate_json(line)
                    except ValidationError as exc:
                        unreadable += 1
                        log.error("spooled event %d of %s is not an event, skipped: %s", number, where, exc)
                        continue
                    decoded.append(EncodedEvent(event.project_id, event.event_id, line))
            if clock() > slice_ends:
                self.hand_over()
                slice_ends = clock() + self._slice
        return decoded, unreadable

    def hand_over(self) -> None:
        """Let other threads run: sleep briefly, which releases the GIL."""
        time.sleep(self._handoff)

    def _invalid(self, encoded: EncodedEvent, error: Any) -> None:
        self.invalid += 1
        now = time.monotonic()
        if now - self._last_invalid_log >= _INVALID_LOG_INTERVAL_SECONDS:
            self._last_invalid_log = now
            log.error(
                "usage event %s does not match the event schema (a bug in the SDK; %d so far); it is "
                "published anyway so the pipeline dead-letters it with the reason: %s",
                encoded.event_id,
                self.invalid,
                error,
            )
