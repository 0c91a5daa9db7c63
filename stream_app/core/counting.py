"""Which copy of an event is billed (SPEC.md §3): pure decisions, no I/O.

The idempotency key is (project_id, event_id). The first accepted copy is billed; a
later copy with the same content is a duplicate (counted, changes nothing); a later
copy whose content differs is a conflicting duplicate (dead-lettered, changes nothing).

"First" is decided by the data, never by a clock: all copies of a key arrive in one
partition (the message key is the project_id), so the billed copy is the one stored
first, and a copy read again from the very message that was stored (a replay after a
crash, or a second worker racing on a rebalance) *is* the billed copy, not a duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter, itemgetter
from typing import Any

from schemas import UsageTrackingEvent
from stream_app.core.billable import BillableEvent, as_billable, digest
from stream_app.core.decode import DecodedEvent
from stream_app.core.windows import Source

EventKey = tuple[str, str]  # (project_id, event_id)

# The fields a copy is compared on, in a fixed order: everything an event says except its
# key (equal by definition), schema_version (always 1) and total_tokens (input + output).
CONTENT_FIELDS: tuple[str, ...] = (
    "timestamp",
    "source",
    "agent_name",
    "session_id",
    "handoff_chain",
    "operation",
    "method",
    "provider",
    "model",
    "usage.input_tokens",
    "usage.output_tokens",
    "usage.cache_read_tokens",
    "usage.cache_write_tokens",
    "usage.reasoning_tokens",
    "tool_calls",
    "finish_reason",
    "duration_ms",
    "error",
    "provider_cost",
    "provider_metadata",
    "context",
)


# Fields stored as JSON text: compared by what the JSON says, not by how it is spelled.
_JSON_FIELDS = frozenset({"tool_calls", "provider_metadata", "context"})


def utc_text(moment: datetime) -> str:
    """A timestamp as compared: UTC, microseconds ("…+00:00" spelled one way)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat(timespec="microseconds")


def decimal_text(value: Decimal | None) -> str | None:
    """A decimal compared by value: 1.50 and 1.5 are the same amount."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def content_of(event: BillableEvent | UsageTrackingEvent) -> tuple:
    """An event's `CONTENT_FIELDS` values, as they are stored (JSON fields as their text)."""
    event = as_billable(event)
    u = event.usage
    return (
        utc_text(event.timestamp),
        event.source,
        event.agent_name,
        event.session_id or "",
        tuple(event.handoff_chain),
        event.operation or "",
        event.method,
        event.provider,
        event.model,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
        event.tool_calls_json,
        event.finish_reason or "",
        None if event.duration_ms is None else float(event.duration_ms),
        event.error,
        decimal_text(event.provider_cost),
        event.provider_metadata_json,
        event.context_json,
    )


def content_from_stored(values: Mapping[str, Any]) -> tuple:
    """The same tuple from a stored `usage_events` row (by column name)."""
    return (
        utc_text(values["timestamp"]),
        values["source"],
        values["agent_name"],
        values["session_id"],
        tuple(values["handoff_chain"]),
        values["operation"],
        values["method"],
        values["provider"],
        values["model"],
        int(values["input_tokens"]),
        int(values["output_tokens"]),
        int(values["cache_read_tokens"]),
        int(values["cache_write_tokens"]),
        int(values["reasoning_tokens"]),
        values["tool_calls"],
        values["finish_reason"],
        None if values["duration_ms"] is None else float(values["duration_ms"]),
        values["error"],
        decimal_text(values["provider_cost_usd"]),
        values["provider_metadata"],
        values["context"],
    )


def fingerprint(content: tuple) -> int:
    """A 64-bit digest of a content tuple, the same in any process (tests compare copies by it)."""
    return digest(json.dumps(content, ensure_ascii=True, separators=(",", ":"), default=str).encode("ascii"))


def differing_fields(a: tuple, b: tuple) -> list[str]:
    """Names of the content fields whose values differ (JSON fields by what they say)."""
    return [name for name, x, y in zip(CONTENT_FIELDS, a, b, strict=True) if x != y and not _same_json(name, x, y)]


def _same_json(name: str, x: Any, y: Any) -> bool:
    if name not in _JSON_FIELDS:
        return False
    try:
        return json.loads(x) == json.loads(y)
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class StoredCopy:
    """What the store says about the billed copy of a key."""

    source: Source
    batch_index: int
    fingerprint: int


class Copy:
    """One copy of an event in the chunk: its key, its message and position, its fingerprint."""

    __slots__ = ("item", "fingerprint", "key", "source", "batch_index")

    def __init__(self, item: DecodedEvent, fingerprint: int, source: Source | None = None) -> None:
        if not isinstance(item.event, BillableEvent):  # a validated model (tests, tools): the core's form
            item = DecodedEvent(as_billable(item.event), item.origin, item.index)
        o = item.origin
        self.item = item
        self.fingerprint = fingerprint
        self.key: EventKey = (item.event.project_id, item.event.event_id)
        self.source = Source(o.topic, o.partition, o.offset) if source is None else source
        self.batch_index = -1 if item.index is None else item.index

    def __repr__(self) -> str:
        return f"Copy({self.key!r} from {self.source!r} #{self.batch_index})"


@dataclass(frozen=True, slots=True)
class Conflict:
    """A later copy whose content differs from the billed one."""

    copy: Copy
    billed: Copy | StoredCopy

    @property
    def billed_source(self) -> tuple[Source, int]:
        return (self.billed.source, self.billed.batch_index)


@dataclass(slots=True)
class CountingDecision:
    """What a chunk's copies are: billed here, duplicates, or conflicting duplicates."""

    accepted: list[Copy] = field(default_factory=list)
    duplicates: list[Copy] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


def copies_of(decoded: Iterable[DecodedEvent]) -> list[Copy]:
    """Each decoded event (as a `BillableEvent`) with its fingerprint, in log order (offset, batch index).

    Events of one message share its origin: they are gathered per message, the messages
    put in log order, and each message's events in batch order.
    """
    messages: dict[int, tuple[Source, list[Copy]]] = {}
    for item in decoded:
        o = item.origin
        message = messages.get(id(o))
        if message is None:
            message = messages[id(o)] = (Source(o.topic, o.partition, o.offset), [])
        copy = Copy(item, 0, message[0])
        copy.fingerprint = copy.item.event.fingerprint
        message[1].append(copy)
    copies: list[Copy] = []
    for _source, members in sorted(messages.values(), key=itemgetter(0)):
        members.sort(key=attrgetter("batch_index"))
        copies.extend(members)
    return copies


def chunk_keys(copies: Sequence[Copy]) -> dict[str, list[str]]:
    """The distinct event_ids of a chunk per project: what to look up in the store."""
    keys: dict[str, dict[str, None]] = {}
    for c in copies:
        keys.setdefault(c.key[0], {})[c.key[1]] = None
    return {project: list(ids) for project, ids in keys.items()}


def decide(copies: Sequence[Copy], stored: Mapping[EventKey, StoredCopy]) -> CountingDecision:
    """Sort a chunk's copies (in log order) into billed, duplicate and conflicting.

    A key's billed copy is the stored one if the store has it, else the chunk's first
    copy. Every copy that *is* the billed copy (same message and batch position) is
    accepted, so a replay rewrites the same rows; every other copy is compared with it.
    """
    decision = CountingDecision()
    billed: dict[EventKey, Copy | StoredCopy] = {}
    accepted_keys: set[EventKey] = set()
    for c in copies:
        key = c.key
        reference = billed.get(key)
        if reference is None:
            reference = billed[key] = stored.get(key) or c
        if c.source == reference.source and c.batch_index == reference.batch_index:
            if key in accepted_keys:  # the same message read twice within one chunk
                decision.duplicates.append(c)
            else:
                accepted_keys.add(key)
                decision.accepted.append(c)
        elif c.fingerprint == reference.fingerprint:
            decision.duplicates.append(c)
        else:
            decision.conflicts.append(Conflict(c, reference))
    return decision


def conflict_detail(fields: Sequence[str], billed: tuple[Source, int]) -> str:
    """The dead letter's detail: which fields differ, and where the billed copy came from."""
    source, index = billed
    where = f"{source.topic}[{source.partition}]@{source.offset}" + (f" #{index}" if index >= 0 else "")
    named = ", ".join(fields) if fields else "(fields equal after validation; stored digest differs)"
    return f"event_id already billed from {where}; this copy differs in: {named}"
