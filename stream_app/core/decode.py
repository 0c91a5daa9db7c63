"""Decode Kafka message values into events, or into rejections that say why.

A message value is one event object or a JSON array of up to `MAX_BATCH_EVENTS` events
(SPEC.md §1). A bad event inside a batch is rejected alone; the rest of the batch goes on.
Pure: no Kafka here, the caller passes where the bytes came from.

This module owns the message-level rules and the event checks in SPEC.md order; the
checks of the free-form objects are in `free_form`, and recovering a rejected batch
element's original bytes for its dead letter is in `original_bytes`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from pydantic import ValidationError

from schemas import UsageTrackingEvent
from schemas.validation_errors import error_field_path, error_message
from stream_app.core.free_form import (
    DEFAULT_DENIED_CONTEXT_KEYS,
    denied_context_path,
    free_form_problem,
    printable_path,
    without_denied_keys,
)
from stream_app.core.original_bytes import (  # original_event_bytes: re-exported for stream_app/worker/chunk.py
    ElementSpans,
    item_bytes,
    original_event_bytes,  # noqa: F401
)

MAX_BATCH_EVENTS = 1000
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Of an oversized message, the dead letter keeps this much (the rest is the problem).
_MAX_KEPT_BYTES = 64 * 1024
# A rejection's detail names this many problems; a message with 300k unknown fields would
# otherwise make a 12 MB detail (and a dead letter no broker accepts).
MAX_ERRORS_IN_DETAIL = 20


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
    PROMPT_TEXT_IN_CONTEXT = "prompt_text_in_context"
    # Decided at write time, against what is already billed (stream_app/core/counting.py):
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    # Valid, but ClickHouse refused its message again and again while answering otherwise:
    SINK_REJECTED = "sink_rejected"


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
    raw_size: int | None = None  # size of the original when `raw` is only its prefix
    # (field path, message) of each problem, for answers that list them (ingest-http's 422)
    problems: tuple[tuple[str, str], ...] = ()


class DecodedEvent(msgspec.Struct, frozen=True, gc=False):
    """A valid event and where it came from (a struct: one is made per event on the hot path)."""

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
    denied_context_keys: frozenset[str] = DEFAULT_DENIED_CONTEXT_KEYS,
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
    except RecursionError:
        # json.loads recurses per nesting level: `[[[[...` would otherwise crash the worker.
        return _rejected(RejectReason.INVALID_JSON, "value is JSON nested too deeply to read", origin, raw)

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
        spans = ElementSpans(text)
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
            raw=raw if index is None else spans,
            now=now,
            max_future_skew=max_future_skew,
            expected_project=expected_project,
            denied_context_keys=denied_context_keys,
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
    raw: bytes | ElementSpans | None,
    now: datetime,
    max_future_skew: timedelta,
    expected_project: str | None,
    denied_context_keys: frozenset[str] = DEFAULT_DENIED_CONTEXT_KEYS,
) -> DecodedEvent | Rejection:
    """Validate one parsed JSON value as an event against every SPEC.md §1 rule.

    `raw` is the item's original bytes, or the spans of the batch it is element `index`
    of (its bytes are found only if it is rejected); None re-encodes the item.
    """
    def reject(
        reason: str, detail: str, field: str = "", problems: tuple[tuple[str, str], ...] = (), redact: bool = False
    ) -> Rejection:
        if redact:
            # The original bytes are exactly what must not be kept: keep the event without them.
            item_raw = item_bytes(without_denied_keys(item, denied_context_keys))
        elif isinstance(raw, ElementSpans):
            item_raw = raw.element_bytes(index, item) if index is not None else item_bytes(item)
        else:
            item_raw = raw if raw is not None else item_bytes(item)
        return Rejection(
            reason, detail, origin, index, item_raw, _str_field(item, "event_id"), _str_field(item, "project_id"),
            problems=problems or ((field, detail),),
        )

    if not isinstance(item, dict):
        return reject(RejectReason.NOT_AN_EVENT, f"batch element is a JSON {type(item).__name__}, not an object")
    version = item.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version != 1:
        return reject(
            RejectReason.UNSUPPORTED_SCHEMA_VERSION,
            f"schema_version is {version!r}; this consumer reads version 1",
            "schema_version",
        )
    denied = denied_context_path(item, denied_context_keys)
    if denied is not None:
        return reject(
            RejectReason.PROMPT_TEXT_IN_CONTEXT,
            f"{printable_path(denied)}: this context key may hold prompt or completion text, which usage events must "
            "not carry (USAGE_CONTEXT_DENY_KEYS); the value was removed from this dead letter",
            printable_path(denied),
            redact=True,
        )
    problem = free_form_problem(item)
    if problem is not None:
        return reject(RejectReason.INVALID_EVENT, problem, problem.partition(":")[0])
    try:
        event = UsageTrackingEvent.model_validate(item)
    except ValidationError as exc:
        return reject(RejectReason.INVALID_EVENT, describe_validation_error(exc), problems=_field_problems(exc))
    except Exception as exc:  # noqa: BLE001 - a validator that raised the wrong type is still a bad event
        return reject(RejectReason.INVALID_EVENT, f"event could not be validated: {type(exc).__name__}: {exc}")
    if event.timestamp - now > max_future_skew:
        return reject(
            RejectReason.FUTURE_TIMESTAMP,
            f"timestamp {event.timestamp.isoformat()} is more than {int(max_future_skew.total_seconds())} s "
            f"after the consumer's clock ({now.isoformat()})",
            "timestamp",
        )
    if expected_project is not None and event.project_id != expected_project:
        return reject(
            RejectReason.PROJECT_KEY_MISMATCH,
            f"project_id {event.project_id!r} differs from the message key {expected_project!r}; "
            "the key must be the project_id",
            "project_id",
        )
    return DecodedEvent(event, origin, index)


def _field_problems(exc: ValidationError) -> tuple[tuple[str, str], ...]:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    return tuple((error_field_path(err["loc"]), error_message(err)) for err in errors[:MAX_ERRORS_IN_DETAIL])


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per problem, each naming the field path: `usage.input_tokens: ...`."""
    parts = []
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    for err in errors[:MAX_ERRORS_IN_DETAIL]:
        path = ".".join(str(p) for p in err["loc"]) or "(event)"
        parts.append(f"{path}: {err['msg']}")
    if len(errors) > MAX_ERRORS_IN_DETAIL:
        parts.append(f"... and {len(errors) - MAX_ERRORS_IN_DETAIL} more errors")
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
            raw_size=len(raw),
        )
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259)")


def _rejected(reason: str, detail: str, origin: MessageOrigin, raw: bytes) -> DecodeResult:
    return DecodeResult([], [Rejection(reason, detail, origin, None, raw)])


def _str_field(item: Any, name: str) -> str | None:
    if isinstance(item, dict):
        value = item.get(name)
        if isinstance(value, str):
            # Dead letters and ClickHouse rows are UTF-8: a lone surrogate stays visible, escaped.
            return value[:128].encode("utf-8", "backslashreplace").decode("utf-8")
    return None


def _key_text(key: bytes | None) -> str | None:
    if not key:
        return None
    # A key that is not UTF-8 cannot equal any project_id: keep it comparable but unequal.
    return key.decode("utf-8", errors="surrogateescape")
