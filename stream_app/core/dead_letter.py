"""The dead-letter record: the original bytes, the reason, and where they came from (pure).

`dead_letter_record` builds what the worker publishes; `parse_dead_letter`,
`summarize_by_reason`, `export_lines` and `plan_replay` are what `usage-pipeline dlq`
does with the records it reads back. No Kafka here: callers pass bytes in and out.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import UsageTrackingEvent
from stream_app.core.decode import MessageOrigin, Rejection, decode_message

DEAD_LETTER_VERSION = 1
# Kafka refuses a message over 1 MiB by default (broker `message.max.bytes`, producer
# `max_request_size` of 1,000,000): a dead letter it refuses would stall the worker, which
# retries delivery until it succeeds. So key + value stay under this, whatever came in.
MAX_DEAD_LETTER_BYTES = 900_000
MAX_DETAIL_CHARS = 4096
# A key longer than any project_id can never be one; it is shown cut, and not reused.
MAX_KEY_BYTES = 1024
_ELLIPSIS = "…"


def dead_letter_record(rejection: Rejection, *, rejected_at: datetime, consumer_group: str) -> tuple[bytes, bytes]:
    """The (key, value) of a dead letter. The key is the original key, so replay keeps partitioning.

    The original bytes are kept whole whenever the record fits in a Kafka message
    (`MAX_DEAD_LETTER_BYTES`); otherwise `raw_text` is left out, and if that is not
    enough `raw_base64` holds a prefix, with `raw_truncated` true. `raw_size` is always
    the size of the whole original; its source topic, partition and offset find it again.
    """
    origin_key = rejection.origin.key
    key = origin_key if origin_key and len(origin_key) <= MAX_KEY_BYTES else (rejection.project_id or "").encode()
    raw = rejection.raw
    raw_size = rejection.raw_size if rejection.raw_size is not None else len(raw)
    value: dict[str, Any] = {
        "dead_letter_version": DEAD_LETTER_VERSION,
        "reason": rejection.reason,
        "detail": _cut(rejection.detail, MAX_DETAIL_CHARS),
        "event_id": rejection.event_id,
        "project_id": rejection.project_id,
        "source": {
            "topic": rejection.origin.topic,
            "partition": rejection.origin.partition,
            "offset": rejection.origin.offset,
            "batch_index": rejection.index,
            "key": _cut(origin_key[: MAX_KEY_BYTES + 4].decode("utf-8", "replace"), MAX_KEY_BYTES) if origin_key else None,
        },
        "raw_base64": base64.b64encode(raw).decode("ascii"),
        "raw_text": _utf8_or_none(raw),
        "rejected_at": rejected_at.isoformat(),
        "consumer_group": consumer_group,
        "raw_size": raw_size,
        "raw_truncated": raw_size > len(raw),
    }
    encoded = _encode(value)
    if len(key) + len(encoded) <= MAX_DEAD_LETTER_BYTES:
        return key, encoded
    # Too big for one message: raw_base64 alone carries the bytes, cut to what fits.
    value["raw_text"] = None
    value["raw_base64"] = ""
    room = MAX_DEAD_LETTER_BYTES - len(key) - len(_encode(value))
    kept = raw[: max(0, room) * 3 // 4]
    value["raw_base64"] = base64.b64encode(kept).decode("ascii")
    value["raw_truncated"] = raw_size > len(kept)
    return key, _encode(value)


# --- reading dead letters back ------------------------------------------------------------


class DeadLetterFormatError(ValueError):
    """A record on the dead-letter topic that is not a dead letter this version can read."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter as read back from the dead-letter topic."""

    reason: str
    detail: str
    event_id: str | None
    project_id: str | None
    source: MessageOrigin  # where the rejected input was; `source.key` is the original key
    batch_index: int | None
    raw: bytes
    raw_text: str | None
    raw_size: int
    raw_truncated: bool
    rejected_at: datetime | None
    consumer_group: str | None
    # Where this record itself sits on the dead-letter topic.
    dlq_partition: int = -1
    dlq_offset: int = -1

    @property
    def source_position(self) -> tuple[str, int, int, int | None]:
        """Identifies the rejected input: a redelivered message is dead-lettered again, same position."""
        return (self.source.topic, self.source.partition, self.source.offset, self.batch_index)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, the same fields as the record on the topic plus its position there."""
        return {
            "reason": self.reason,
            "detail": self.detail,
            "event_id": self.event_id,
            "project_id": self.project_id,
            "source": {
                "topic": self.source.topic,
                "partition": self.source.partition,
                "offset": self.source.offset,
                "batch_index": self.batch_index,
                "key": self.source.key.decode("utf-8", "replace") if self.source.key else None,
            },
            "raw_base64": base64.b64encode(self.raw).decode("ascii"),
            "raw_text": self.raw_text,
            "raw_size": self.raw_size,
            "raw_truncated": self.raw_truncated,
            "rejected_at": self.rejected_at.isoformat() if self.rejected_at else None,
            "consumer_group": self.consumer_group,
            "dlq_partition": self.dlq_partition,
            "dlq_offset": self.dlq_offset,
        }


def parse_dead_letter(key: bytes | None, value: bytes | None, *, partition: int = -1, offset: int = -1) -> DeadLetter:
    """Read one record of the dead-letter topic; raises `DeadLetterFormatError` if it is not one.

    The record's Kafka key is the original message's key (or, for a keyless message,
    the project_id): it is the key a replay must use. Records written before
    `raw_size`/`raw_truncated` existed read as complete.
    """
    try:
        record = json.loads(value or b"")
    except (ValueError, RecursionError) as exc:
        raise DeadLetterFormatError(f"not JSON: {exc}") from None
    if not isinstance(record, dict) or record.get("dead_letter_version") != DEAD_LETTER_VERSION:
        raise DeadLetterFormatError(f"not a version {DEAD_LETTER_VERSION} dead letter")
    source = record.get("source")
    if not isinstance(source, dict):
        raise DeadLetterFormatError("has no source")
    try:
        raw = base64.b64decode(record.get("raw_base64") or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DeadLetterFormatError(f"raw_base64 is not base64: {exc}") from None
    reason = record.get("reason")
    if not isinstance(reason, str) or not reason:
        raise DeadLetterFormatError("has no reason")
    raw_size = record.get("raw_size")
    return DeadLetter(
        reason=reason,
        detail=_str_or(record.get("detail"), ""),
        event_id=_str_or(record.get("event_id"), None),
        project_id=_str_or(record.get("project_id"), None),
        source=MessageOrigin(
            _str_or(source.get("topic"), ""),
            _int_or(source.get("partition"), -1),
            _int_or(source.get("offset"), -1),
            key or None,
        ),
        batch_index=_int_or(source.get("batch_index"), None),
        raw=raw,
        raw_text=_str_or(record.get("raw_text"), None),
        raw_size=raw_size if isinstance(raw_size, int) and not isinstance(raw_size, bool) else len(raw),
        raw_truncated=record.get("raw_truncated") is True,
        rejected_at=_time_or_none(record.get("rejected_at")),
        consumer_group=_str_or(record.get("consumer_group"), None),
        dlq_partition=partition,
        dlq_offset=offset,
    )


@dataclass(slots=True)
class ReasonSummary:
    """What the dead letters of one reason have in common."""

    reason: str
    count: int = 0  # dead-letter records
    distinct: int = 0  # distinct rejected inputs (a redelivered message is dead-lettered again)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    example_detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "count": self.count,
            "distinct": self.distinct,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "example_detail": self.example_detail,
        }


class DeadLetterSummary:
    """Running summary by reason; feed it letters one at a time (the topic may be large)."""

    def __init__(self) -> None:
        self._by_reason: dict[str, ReasonSummary] = {}
        self._inputs: set[tuple[str, int, int, int | None]] = set()
        self._inputs_by_reason: set[tuple[str, tuple[str, int, int, int | None]]] = set()
        self.total = 0

    def add(self, letter: DeadLetter) -> None:
        summary = self._by_reason.get(letter.reason)
        if summary is None:
            summary = self._by_reason[letter.reason] = ReasonSummary(letter.reason, example_detail=letter.detail)
        self.total += 1
        summary.count += 1
        self._inputs.add(letter.source_position)
        if (letter.reason, letter.source_position) not in self._inputs_by_reason:
            self._inputs_by_reason.add((letter.reason, letter.source_position))
            summary.distinct += 1
        at = letter.rejected_at
        if at is not None:
            if summary.first_seen is None or at < summary.first_seen:
                summary.first_seen = at
            if summary.last_seen is None or at > summary.last_seen:
                summary.last_seen = at

    @property
    def distinct(self) -> int:
        """Distinct rejected inputs over all reasons."""
        return len(self._inputs)

    def reasons(self) -> list[ReasonSummary]:
        """Most frequent reason first; ties by name."""
        return sorted(self._by_reason.values(), key=lambda s: (-s.count, s.reason))


def summarize_by_reason(letters: Iterable[DeadLetter]) -> list[ReasonSummary]:
    """Count, distinct inputs, first/last seen and an example detail per reason."""
    summary = DeadLetterSummary()
    for letter in letters:
        summary.add(letter)
    return summary.reasons()


def export_lines(letter: DeadLetter) -> list[str]:
    """The letter's original event JSON, one event per line, for a person to fix and replay.

    A rejected batch (its raw is a JSON array) gives one line per element; an event
    spread over several lines is made compact; text that is not JSON is kept, its line
    breaks turned into spaces. Raises `DeadLetterFormatError` when there is nothing a
    person could fix: the original was not UTF-8, or the letter holds only its prefix.
    """
    if letter.raw_truncated:
        raise DeadLetterFormatError(
            f"holds only the first {len(letter.raw)} of {letter.raw_size} bytes; the whole message is at "
            f"{letter.source.topic} partition {letter.source.partition} offset {letter.source.offset}"
        )
    text = letter.raw_text if letter.raw_text is not None else _utf8_or_none(letter.raw)
    if text is None:
        raise DeadLetterFormatError("the original bytes are not UTF-8 text")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return [" ".join(text.splitlines())] if text.strip() else []
    if isinstance(parsed, list):
        return [_compact(item) for item in parsed]
    if "\n" in text or "\r" in text:
        return [_compact(parsed)]
    return [text.strip()]


# --- replay -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayMessage:
    """Bytes that pass every rule now, and the key to publish them with."""

    key: bytes | None
    value: bytes
    events: tuple[UsageTrackingEvent, ...]
    origin: str  # where they came from, for the report: a dead letter's source or a file line


@dataclass(frozen=True, slots=True)
class ReplaySkip:
    """A dead letter or a line that still cannot be billed, and why."""

    origin: str
    reason: str
    detail: str


@dataclass(slots=True)
class ReplayPlan:
    """What a replay would publish, and what it leaves alone."""

    ready: list[ReplayMessage] = field(default_factory=list)
    skipped: list[ReplaySkip] = field(default_factory=list)
    repeats: int = 0  # dead letters of an input already planned (redelivery dead-letters twice)

    @property
    def events(self) -> int:
        return sum(len(message.events) for message in self.ready)


class ReplayPlanner:
    """Re-validates dead letters one at a time with the current rules (see `plan_replay`)."""

    def __init__(self, *, now: datetime, max_future_skew: timedelta, reason: str | None = None) -> None:
        self.now = now
        self.max_future_skew = max_future_skew
        self.reason = reason
        self.plan = ReplayPlan()
        self._planned: set[tuple[str, int, int, int | None]] = set()

    def add(self, letter: DeadLetter) -> ReplayMessage | ReplaySkip | None:
        """Plan one letter; None when it is not selected or its input was planned already."""
        if self.reason is not None and letter.reason != self.reason:
            return None
        if letter.source_position in self._planned:
            self.plan.repeats += 1
            return None
        self._planned.add(letter.source_position)
        where = describe_source(letter)
        if letter.raw_truncated:
            return self._skip(ReplaySkip(where, letter.reason, "the dead letter holds only a prefix of the message"))
        result = decode_message(letter.raw, letter.source, now=self.now, max_future_skew=self.max_future_skew)
        if result.rejections:
            first = result.rejections[0]
            return self._skip(ReplaySkip(where, first.reason, first.detail))
        events = tuple(decoded.event for decoded in result.events)
        message = ReplayMessage(_replay_key(letter.source.key, events), letter.raw, events, where)
        self.plan.ready.append(message)
        return message

    def _skip(self, skip: ReplaySkip) -> ReplaySkip:
        self.plan.skipped.append(skip)
        return skip


def plan_replay(
    letters: Iterable[DeadLetter],
    *,
    now: datetime,
    max_future_skew: timedelta,
    reason: str | None = None,
) -> ReplayPlan:
    """Re-validate each dead letter's original bytes with the current rules.

    A letter is ready when its bytes, under its original key, now decode with no
    rejection at all (e.g. a `future_timestamp` event whose time has come); it is then
    re-published byte for byte. Everything else is skipped with the reason it fails now.
    Each rejected input is planned once, however often it was dead-lettered.
    """
    planner = ReplayPlanner(now=now, max_future_skew=max_future_skew, reason=reason)
    for letter in letters:
        planner.add(letter)
    return planner.plan


def plan_file_replay(
    lines: Iterable[bytes], *, now: datetime, max_future_skew: timedelta, source_name: str = "file"
) -> ReplayPlan:
    """Validate corrected events, one JSON object per line, with the consumer's own rules.

    Blank lines are skipped and a UTF-8 byte order mark on the first line is ignored; a
    good line is published as it is, keyed by its project_id. A bad line is skipped with
    `line N` and the reason, exactly as the worker would have dead-lettered it.
    """
    plan = ReplayPlan()
    for number, line in enumerate(lines, start=1):
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        line = line.strip()
        if not line:
            continue
        where = f"line {number}"
        origin = MessageOrigin(source_name, 0, number, None)
        result = decode_message(line, origin, now=now, max_future_skew=max_future_skew)
        if result.rejections:
            first = result.rejections[0]
            plan.skipped.append(ReplaySkip(where, first.reason, first.detail))
        elif any(decoded.index is not None for decoded in result.events):
            plan.skipped.append(ReplaySkip(where, "not_an_event", "a line holds one event object, not an array"))
        else:
            events = tuple(decoded.event for decoded in result.events)
            plan.ready.append(ReplayMessage(events[0].project_id.encode(), line, events, where))
    return plan


def describe_source(letter: DeadLetter) -> str:
    """`topic[partition]@offset` and the batch index, e.g. `llm.usage.events[2]@1041#7`."""
    where = f"{letter.source.topic}[{letter.source.partition}]@{letter.source.offset}"
    return where if letter.batch_index is None else f"{where}#{letter.batch_index}"


def _replay_key(original: bytes | None, events: tuple[UsageTrackingEvent, ...]) -> bytes | None:
    # A keyed message passed the key check, so its key is its project_id already; a
    # keyless one gets the project_id as key (SPEC.md §1) when all its events share one.
    if original:
        return original
    projects = {event.project_id for event in events}
    return projects.pop().encode() if len(projects) == 1 else None


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode().decode()
    except UnicodeEncodeError:  # a lone surrogate: keep it escaped
        return json.dumps(value, separators=(",", ":"))


def _cut(text: str, limit: int) -> str:
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def _utf8_or_none(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _str_or(value: Any, default: Any) -> Any:
    return value if isinstance(value, str) else default


def _int_or(value: Any, default: Any) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _time_or_none(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # The worker writes UTC with an offset; a bare time from elsewhere is read as UTC, so
    # that first/last seen can compare it with the others.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
