"""Pack events into Kafka message values: JSON arrays of one project's events (SPEC §1).

Pure: no I/O, no Kafka. A stream processor pays a fixed cost per message, so producers
send batches; the key is the project_id, so a batch must never mix projects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from producers.errors import EventTooLargeError
from producers.wire import EncodedEvent
from schemas import UsageTrackingEvent

# SPEC §1: consumers accept batches of up to 1,000 events.
MAX_EVENTS_PER_MESSAGE = 1000
# Below Kafka's default 1 MiB message limit, leaving room for the key and record overhead.
DEFAULT_MAX_MESSAGE_BYTES = 900_000

# `[` + `]` around the array; one `,` between elements.
_ARRAY_BRACKETS_BYTES = 2
_SEPARATOR_BYTES = 1


@dataclass(frozen=True, slots=True)
class EventBatch:
    """One Kafka message value: a compact UTF-8 JSON array of one project's events."""

    project_id: str
    payload: bytes
    event_ids: tuple[str, ...]

    @property
    def key(self) -> bytes:
        """The Kafka message key: the project_id as UTF-8."""
        return self.project_id.encode()


def encode_event(event: UsageTrackingEvent) -> bytes:
    """The event's wire JSON (same content as `event.wire_dict()`), compact UTF-8."""
    return event.model_dump_json().encode()


def pack_batches(
    events: Iterable[UsageTrackingEvent],
    max_events: int = MAX_EVENTS_PER_MESSAGE,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[EventBatch]:
    """Group events by project_id and pack each project's events into as few batches as fit.

    Projects come out in the order they first appear; within a project, events keep their
    input order across and inside batches. No batch holds more than `max_events` events or
    more than `max_bytes` bytes of payload. Raises `EventTooLargeError` (naming the event)
    if one event alone exceeds `max_bytes`, before any batch is returned.
    """
    return pack_encoded([EncodedEvent.of(event) for event in events], max_events, max_bytes)


def pack_encoded(
    events: Iterable[EncodedEvent],
    max_events: int = MAX_EVENTS_PER_MESSAGE,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[EventBatch]:
    """`pack_batches` for events already encoded (what the background sender has)."""
    _check_limits(max_events, max_bytes)
    batches: list[EventBatch] = []
    for project_id, project_events in _group_by_project(events).items():
        batches.extend(_pack_project(project_id, project_events, max_events, max_bytes))
    return batches


def _check_limits(max_events: int, max_bytes: int) -> None:
    if not 1 <= max_events <= MAX_EVENTS_PER_MESSAGE:
        raise ValueError(
            f"max_events must be between 1 and {MAX_EVENTS_PER_MESSAGE} (consumers accept no more), "
            f"got {max_events}"
        )
    if max_bytes < _ARRAY_BRACKETS_BYTES + 1:
        raise ValueError(f"max_bytes must be large enough for one event, got {max_bytes}")


def _group_by_project(events: Iterable[EncodedEvent]) -> dict[str, list[EncodedEvent]]:
    # dict keeps first-seen order, so output order is deterministic for callers and tests.
    groups: dict[str, list[EncodedEvent]] = {}
    for event in events:
        groups.setdefault(event.project_id, []).append(event)
    return groups


def _pack_project(project_id: str, events: list[EncodedEvent], max_events: int, max_bytes: int) -> list[EventBatch]:
    batches: list[EventBatch] = []
    parts: list[bytes] = []
    ids: list[str] = []
    size = _ARRAY_BRACKETS_BYTES
    for event in events:
        encoded = event.json
        alone = _ARRAY_BRACKETS_BYTES + len(encoded)
        if alone > max_bytes:
            raise EventTooLargeError(event.event_id, alone, max_bytes)
        added = len(encoded) + (_SEPARATOR_BYTES if parts else 0)
        if parts and (len(parts) >= max_events or size + added > max_bytes):
            batches.append(_make_batch(project_id, parts, ids))
            parts, ids, size = [], [], _ARRAY_BRACKETS_BYTES
            added = len(encoded)
        parts.append(encoded)
        ids.append(event.event_id)
        size += added
    if parts:
        batches.append(_make_batch(project_id, parts, ids))
    return batches


def _make_batch(project_id: str, parts: list[bytes], ids: list[str]) -> EventBatch:
    return EventBatch(project_id=project_id, payload=b"[" + b",".join(parts) + b"]", event_ids=tuple(ids))
