"""Decode Kafka message values into events, or into rejections that say why.

A message value is one event object or a JSON array of up to `MAX_BATCH_EVENTS` events
(SPEC.md §1). A bad event inside a batch is rejected alone; the rest of the batch goes on.
Pure: no Kafka here, the caller passes where the bytes came from.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from schemas import UsageTrackingEvent
from schemas.event import MAX_OBJECT_JSON_BYTES
from schemas.validation_errors import error_field_path, error_message

MAX_BATCH_EVENTS = 1000
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Of an oversized message, the dead letter keeps this much (the rest is the problem).
_MAX_KEPT_BYTES = 64 * 1024
# The free-form objects (`context`, `provider_metadata`) are the only fields whose depth
# the schema does not bound; deeper than this they would strain every later re-encoding.
MAX_NESTING_DEPTH = 64
# A rejection's detail names this many problems; a message with 300k unknown fields would
# otherwise make a 12 MB detail (and a dead letter no broker accepts).
MAX_ERRORS_IN_DETAIL = 20
_FREE_FORM_FIELDS = ("context", "provider_metadata")
# `context` keys that hold prompt or completion text, which a metering pipeline must not
# store (USAGE_CONTEXT_DENY_KEYS overrides; an empty set turns the check off).
DEFAULT_DENIED_CONTEXT_KEYS = frozenset({"prompt", "messages", "content", "completion"})
REMOVED_MARKER = "<removed by the usage pipeline: possible prompt text>"


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
            item_raw = _item_bytes(_without_denied_keys(item, denied_context_keys))
        elif isinstance(raw, ElementSpans):
            item_raw = raw.element_bytes(index, item) if index is not None else _item_bytes(item)
        else:
            item_raw = raw if raw is not None else _item_bytes(item)
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
    denied = _denied_context_path(item, denied_context_keys)
    if denied is not None:
        return reject(
            RejectReason.PROMPT_TEXT_IN_CONTEXT,
            f"{_printable(denied)}: this context key may hold prompt or completion text, which usage events must "
            "not carry (USAGE_CONTEXT_DENY_KEYS); the value was removed from this dead letter",
            _printable(denied),
            redact=True,
        )
    problem = _free_form_problem(item)
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


def _denied_context_path(item: dict[str, Any], denied: frozenset[str]) -> str | None:
    """The path of the first denied key anywhere inside `context`, or None.

    Nested keys count too: `{"request": {"messages": [...]}}` carries prompt text as surely
    as a top-level `messages`. Depth is bounded like the free-form check's.
    """
    context = item.get("context")
    if not denied or not isinstance(context, dict) or not context:
        return None
    stack: list[tuple[Any, str, int]] = [(context, "context", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            continue  # the free-form check rejects it for its depth
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            child_path = f"{path}.{key}" if isinstance(node, dict) else f"{path}[{key}]"
            if isinstance(key, str) and key in denied:
                return child_path
            if isinstance(child, (dict, list)) and child:
                stack.append((child, child_path, depth + 1))
    return None


def _without_denied_keys(value: Any, denied: frozenset[str], depth: int = 0) -> Any:
    """A copy of an event with the values of denied `context` keys replaced by a marker."""
    if depth == 0:
        return {k: (_without_denied_keys(v, denied, 1) if k == "context" else v) for k, v in value.items()}
    if depth > MAX_NESTING_DEPTH:
        return REMOVED_MARKER
    if isinstance(value, dict):
        return {k: (REMOVED_MARKER if k in denied else _without_denied_keys(v, denied, depth + 1)) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_denied_keys(v, denied, depth + 1) for v in value]
    return value


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


def _item_bytes(item: Any) -> bytes:
    try:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        # A lone surrogate (`"\\ud800"` in the JSON) cannot be UTF-8: keep it escaped, as it came.
        return json.dumps(item, separators=(",", ":")).encode()


def _str_field(item: Any, name: str) -> str | None:
    if isinstance(item, dict):
        value = item.get(name)
        if isinstance(value, str):
            # Dead letters and ClickHouse rows are UTF-8: a lone surrogate stays visible, escaped.
            return value[:128].encode("utf-8", "backslashreplace").decode("utf-8")
    return None


# A JSON string, or one structural character. Only run on text json.loads accepted.
_JSON_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')
_JSON_WHITESPACE = " \t\n\r"


class ElementSpans:
    """The original bytes of each element of a JSON array, found only when one is asked for.

    A rejected batch element is dead-lettered as it arrived (same bytes, escapes and
    number spellings), not re-encoded: re-encoding could fail (lone surrogates, depth) or
    change it (duplicate keys). Found by one scan of the message, at the first rejection.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._spans: list[tuple[int, int]] | None = None

    def element_bytes(self, index: int, item: Any) -> bytes:
        """Element `index` as it was sent; `item` (its parsed value) is re-encoded only as a fallback."""
        if self._spans is None:
            self._spans = _array_element_spans(self._text)
        if index < len(self._spans):
            start, end = self._spans[index]
            return self._text[start:end].encode("utf-8")
        return _item_bytes(item)  # unreachable for text json.loads accepted


def _array_element_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level element of the JSON array `text`, whitespace trimmed."""
    bounds: list[int] = []
    depth = 0
    for match in _JSON_STRUCTURE.finditer(text):
        char = text[match.start()]
        if char == '"':
            continue
        if char in "[{":
            depth += 1
            if depth == 1:
                bounds.append(match.end())
        elif char in "]}":
            if depth == 1:
                bounds.append(match.start())
            depth -= 1
        elif depth == 1:  # a comma between two elements
            bounds += [match.start(), match.end()]
    spans = []
    for start, end in zip(bounds[::2], bounds[1::2]):
        while start < end and text[start] in _JSON_WHITESPACE:
            start += 1
        while end > start and text[end - 1] in _JSON_WHITESPACE:
            end -= 1
        spans.append((start, end))
    return spans


def _free_form_problem(item: dict[str, Any]) -> str | None:
    """What makes a free-form object unstorable, or None.

    The schema types every other field; these take any JSON, so three things that
    `json.loads` lets through are checked here: strings that are not Unicode (a lone
    `\\ud800` escape: the ClickHouse write would fail forever), numbers too large for a
    float (`1e400` becomes infinity), and nesting deeper than `MAX_NESTING_DEPTH`.
    """
    for field in _FREE_FORM_FIELDS:
        value = item.get(field)
        if not value or not isinstance(value, dict):
            continue  # absent, empty, or the wrong type, which the schema reports
        # Every entry takes at least 4 bytes of JSON: past this many, the schema's size
        # bound rejects the object anyway, so stop walking it.
        budget = MAX_OBJECT_JSON_BYTES // 4
        stack: list[tuple[Any, str, int]] = [(value, field, 1)]
        while stack and budget > 0:
            node, path, depth = stack.pop()
            if depth > MAX_NESTING_DEPTH:
                return f"{field}: nested more than {MAX_NESTING_DEPTH} levels deep"
            children = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in children:
                budget -= 1
                # isascii() first: nearly every string is ASCII, and that check is cheap.
                if type(key) is str and not key.isascii() and not _is_unicode(key):
                    return f"{_printable(path)}: a key holds a lone UTF-16 surrogate, which is not Unicode text"
                if type(child) is str:
                    if not child.isascii() and not _is_unicode(child):
                        return f"{_printable(f'{path}.{key}')}: holds a lone UTF-16 surrogate, which is not Unicode text"
                elif isinstance(child, (dict, list)):
                    if child:
                        stack.append((child, f"{path}.{key}", depth + 1))
                elif type(child) is float and not math.isfinite(child):
                    return f"{_printable(f'{path}.{key}')}: number is out of range for a 64-bit float"
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(path: str) -> str:
    return path[:200].encode("utf-8", "backslashreplace").decode("utf-8")


def _key_text(key: bytes | None) -> str | None:
    if not key:
        return None
    # A key that is not UTF-8 cannot equal any project_id: keep it comparable but unequal.
    return key.decode("utf-8", errors="surrogateescape")


def original_event_bytes(value: bytes, index: int | None) -> bytes:
    """One event as it arrived: the whole message, or element `index` of its JSON array.

    For dead letters decided after decoding (a conflicting duplicate), found by one scan
    of the message; only ever called for messages that decoded.
    """
    if index is None:
        return value
    text = value.decode("utf-8")
    spans = _array_element_spans(text)
    start, end = spans[index]
    return text[start:end].encode("utf-8")
