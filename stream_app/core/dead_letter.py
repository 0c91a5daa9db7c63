"""The dead-letter record: the original bytes, the reason, and where they came from (pure).

The record format, both ways: `dead_letter_record` builds what the worker publishes;
`parse_dead_letter` reads a record back, `describe_source` names where its input was and
`export_lines` gives its original events for a person to fix. No Kafka here: callers pass
bytes in and out. What `usage-pipeline dlq` does with many records is elsewhere:
counting them by reason in `dead_letter_summary`, re-validating them for a replay in
`dead_letter_replay`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream_app.core.decode import MessageOrigin, Rejection

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


def describe_source(letter: DeadLetter) -> str:
    """`topic[partition]@offset` and the batch index, e.g. `llm.usage.events[2]@1041#7`."""
    where = f"{letter.source.topic}[{letter.source.partition}]@{letter.source.offset}"
    return where if letter.batch_index is None else f"{where}#{letter.batch_index}"


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
