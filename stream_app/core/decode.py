"""Decode Kafka message values into events, or into rejections that say why.

A message value is one event object or a JSON array of up to `MAX_BATCH_EVENTS` events
(SPEC.md §1). A bad event inside a batch is rejected alone; the rest of the batch goes on.
Pure: no Kafka here, the caller passes where the bytes came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from schemas import UsageTrackingEvent

MAX_BATCH_EVENTS = 1000
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Of an oversized message, the dead letter keeps this much (the rest is the problem).
_MAX_KEPT_BYTES = 64 * 1024


class RejectReason:
    """Stable reason codes: dead letters and metrics are grouped by these."""

    EMPTY_MESSAGE = "empty_message"
    MESSAGE_TOO_LARGE = "message_too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_EVENT = "not_an_event"
    EMPTY_BATCH = "empty_batch"
    BATCH_TOO_LARGE = "batch_too_large"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    INVALID_EVENT = "invalid_event"
    FUTURE_TIMESTAMP = "future_timestamp"
    PROJECT_KEY_MISMATCH = "project_key_mismatch"


@dataclass(frozen=True, slots=True)
class MessageOrigin:
    """Where a message came from: enough to find it again in Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input that cannot be billed, with its original bytes and the reason."""

    reason: str
    detail: str
    origin: MessageOrigin
    index: int | None  # position inside a batch; None when the whole message failed
    raw: bytes
    event_id: str | None = None
    project_id: str | None = None


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """A valid event and where it came from."""

    event: UsageTrackingEvent
    origin: MessageOrigin
    index: int | None


@dataclass(frozen=True, slots=True)
class DecodeResult:
    events: list[DecodedEvent]
    rejections: list[Rejection]


def decode_message(
    value: bytes | None,
    origin: MessageOrigin,
    *,
    now: datetime,
    max_future_skew: timedelta,
) -> DecodeResult:
    """Turn one Kafka message value into valid events and rejections; never raises."""
    raw = value or b""
    whole = _message_rejection(raw, origin)
    if whole is not None:
        return DecodeResult([], [whole])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _rejected(RejectReason.INVALID_UTF8, f"value is not UTF-8: {exc}", origin, raw)
    try:
        parsed = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        return _rejected(RejectReason.INVALID_JSON, f"value is not JSON: {exc}", origin, raw)

    if isinstance(parsed, dict):
        items: list[tuple[int | None, Any]] = [(None, parsed)]
    elif isinstance(parsed, list):
        if not parsed:
            return _rejected(RejectReason.EMPTY_BATCH, "batch is an empty JSON array", origin, raw)
        if len(parsed) > MAX_BATCH_EVENTS:
            return _rejected(
                RejectReason.BATCH_TOO_LARGE,
                f"batch has {len(parsed)} events; at most {MAX_BATCH_EVENTS} per message",
                origin,
                raw,
            )
        items = list(enumerate(parsed))
    else:
        return _rejected(
            RejectReason.NOT_AN_EVENT,
            f"value is a JSON {type(parsed).__name__}, expected an event object or an array of them",
            origin,
            raw,
        )

    expected_project = _key_text(origin.key)
    events: list[DecodedEvent] = []
    rejections: list[Rejection] = []
    for index, item in items:
        outcome = decode_item(
            item,
            origin=origin,
            index=index,
            raw=raw if index is None else None,
            now=now,
            max_future_skew=max_future_skew,
            expected_project=expected_project,
        )
        if isinstance(outcome, Rejection):
            rejections.append(outcome)
        else:
            events.append(outcome)
    return DecodeResult(events, rejections)


def decode_item(
    item: Any,
    *,
    origin: MessageOrigin,
    index: int | None,
    raw: bytes | None,
    now: datetime,
    max_future_skew: timedelta,
    expected_project: str | None,
) -> DecodedEvent | Rejection:
    """Validate one parsed JSON value as an event against every SPEC.md §1 rule."""
    def reject(reason: str, detail: str) -> Rejection:
        item_raw = raw if raw is not None else _item_bytes(item)
        return Rejection(
            reason, detail, origin, index, item_raw, _str_field(item, "event_id"), _str_field(item, "project_id")
        )

    if not isinstance(item, dict):
        return reject(RejectReason.NOT_AN_EVENT, f"batch element is a JSON {type(item).__name__}, not an object")
    version = item.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version != 1:
        return reject(
            RejectReason.UNSUPPORTED_SCHEMA_VERSION,
            f"schema_version is {version!r}; this consumer reads version 1",
        )
    try:
        event = UsageTrackingEvent.model_validate(item)
    except ValidationError as exc:
        return reject(RejectReason.INVALID_EVENT, describe_validation_error(exc))
    if event.timestamp - now > max_future_skew:
        return reject(
            RejectReason.FUTURE_TIMESTAMP,
            f"timestamp {event.timestamp.isoformat()} is more than {int(max_future_skew.total_seconds())} s "
            f"after the consumer's clock ({now.isoformat()})",
        )
    if expected_project is not None and event.project_id != expected_project:
        return reject(
            RejectReason.PROJECT_KEY_MISMATCH,
            f"project_id {event.project_id!r} differs from the message key {expected_project!r}; "
            "the key must be the project_id",
        )
    return DecodedEvent(event, origin, index)


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per problem, each naming the field path: `usage.input_tokens: ...`."""
    parts = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "(event)"
        parts.append(f"{path}: {err['msg']}")
    return "; ".join(parts)


def _message_rejection(raw: bytes, origin: MessageOrigin) -> Rejection | None:
    if not raw.strip():
        return Rejection(RejectReason.EMPTY_MESSAGE, "message value is empty", origin, None, raw)
    if len(raw) > MAX_MESSAGE_BYTES:
        return Rejection(
            RejectReason.MESSAGE_TOO_LARGE,
            f"message is {len(raw)} bytes; at most {MAX_MESSAGE_BYTES}",
            origin,
            None,
            raw[:_MAX_KEPT_BYTES],
        )
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259)")


def _rejected(reason: str, detail: str, origin: MessageOrigin, raw: bytes) -> DecodeResult:
    return DecodeResult([], [Rejection(reason, detail, origin, None, raw)])


def _item_bytes(item: Any) -> bytes:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()


def _str_field(item: Any, name: str) -> str | None:
    if isinstance(item, dict):
        value = item.get(name)
        if isinstance(value, str):
            return value[:128]
    return None


def _key_text(key: bytes | None) -> str | None:
    if not key:
        return None
    # A key that is not UTF-8 cannot equal any project_id: keep it comparable but unequal.
    return key.decode("utf-8", errors="surrogateescape")
