"""The worker's hot path: decode and validate a whole message in one call (msgspec).

pydantic (`schemas/event.py`) stays the schema of record; this module accepts exactly
what it accepts, with the same values, proven by a differential property test
(tests/unit/core/test_fast_decode.py). It never rejects anything itself: a message or an
event it is not sure about goes to `stream_app.core.decode` (the pydantic path), which
names what is wrong with the same reason codes the rest of the pipeline uses. Only the
common case, a well-formed batch, takes the fast road: one `decode` call for the whole
array, a few checks per event that msgspec cannot express, and free-form JSON kept as
it arrived.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from schemas.event import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_HANDOFF_CHAIN,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_OBJECT_JSON_BYTES,
    MAX_TEXT_CHARS,
    MAX_TOKENS,
    MAX_TOOL_CALLS,
    _bounded_object,
    _parse_decimal_string,
)
from stream_app.core.billable import BillableEvent, BillableToolCall, BillableUsage, as_billable, digest
from stream_app.core.decode import (
    MAX_BATCH_EVENTS,
    DecodedEvent,
    DecodeResult,
    MessageOrigin,
    Rejection,
    _key_text,
    _message_rejection,
    decode_item,
    decode_message,
)
from stream_app.core.free_form import DEFAULT_DENIED_CONTEXT_KEYS, denied_context_path, free_form_problem

_Tokens = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]
_Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS)]


class _WireUsage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    input_tokens: _Tokens
    output_tokens: _Tokens
    cache_read_tokens: _Tokens = 0
    cache_write_tokens: _Tokens = 0
    reasoning_tokens: _Tokens = 0
    total_tokens: _Tokens | None = None


class _WireEvent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    schema_version: Literal[1]
    event_id: Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS)]
    timestamp: str
    source: _Name
    project_id: _Name
    agent_name: _Name
    session_id: _Name | None = None
    handoff_chain: Annotated[list[_Name], Meta(max_length=MAX_HANDOFF_CHAIN)] = []
    operation: _Name | None = None
    method: Literal["generate", "stream"]
    provider: _Name
    model: _Name
    usage: _WireUsage
    tool_calls: Annotated[list[BillableToolCall], Meta(max_length=MAX_TOOL_CALLS)] = []
    finish_reason: _Name | None = None
    duration_ms: Annotated[float, Meta(ge=0)] | None = None
    error: Annotated[str, Meta(max_length=MAX_TEXT_CHARS)] | None = None
    provider_cost: str | None = None
    provider_metadata: msgspec.Raw = msgspec.Raw(b"{}")
    context: msgspec.Raw = msgspec.Raw(b"{}")


# What msgspec raises for input it will not take (RecursionError: nesting past its limit).
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)

_BATCH = msgspec.json.Decoder(list[_WireEvent])
_SINGLE = msgspec.json.Decoder(_WireEvent)
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
_ENCODER = msgspec.json.Encoder()
_ANY = msgspec.json.Decoder()

# The one timestamp spelling taken fast; any other (which pydantic may still accept) goes
# the slow way rather than risk reading it differently.
# (ASCII digits only: a str pattern's \d would also match other scripts' digits.)
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})")
_EMPTY_OBJECT = b"{}"


class _Checks:
    """What every event of a message is checked against, beyond its own fields."""

    __slots__ = ("now", "max_future_skew", "denied", "doubtful_text", "plain", "expected_project")

    def __init__(self, now: datetime, max_future_skew: timedelta, denied: frozenset[str], expected_project: str | None):
        self.now = now
        self.max_future_skew = max_future_skew
        self.denied = denied
        self.doubtful_text = _doubtful_text(denied)
        self.plain = _PLAIN_SEEN.setdefault(denied, {})
        self.expected_project = expected_project


_DOUBTFUL_TEXT: dict[frozenset[str], re.Pattern[bytes]] = {}


# Free-form objects already judged plainly fine or not, per deny-list: traffic repeats the
# same few contexts (a region, a tenant), and a dictionary hit is a tenth of the scan.
_PLAIN_SEEN: dict[frozenset[str], dict[bytes, bool]] = {}
_PLAIN_SEEN_MAX = 20_000
_PLAIN_SEEN_BYTES = 256  # at most ~5 MB held


def _doubtful_text(denied: frozenset[str]) -> re.Pattern[bytes]:
    """One pattern finding, in one scan, a three-digit exponent, a very long number or any
    denied key's text (cached per deny-list): what sends a free-form object the slow way."""
    if denied not in _DOUBTFUL_TEXT:
        words = [re.escape(k.encode()) for k in sorted(denied)]
        _DOUBTFUL_TEXT[denied] = re.compile(b"|".join([_BIG_NUMBER, *words]))
    return _DOUBTFUL_TEXT[denied]


def decode_billable_message(
    value: bytes | None,
    origin: MessageOrigin,
    *,
    now: datetime,
    max_future_skew: timedelta,
    denied_context_keys: frozenset[str] = DEFAULT_DENIED_CONTEXT_KEYS,
) -> DecodeResult:
    """Like `decode_message`, with `BillableEvent`s; whole batches at once where they are valid."""
    raw = value or b""
    checks = _Checks(now, max_future_skew, denied_context_keys, _key_text(origin.key))
    fast = None
    if _message_rejection(raw, origin) is None:
        try:
            fast = _fast_message(raw, origin, checks)
        except Exception:  # noqa: BLE001 - never let the fast road stop the worker: take the slow one
            fast = None
    if fast is not None:
        return fast
    slow = decode_message(raw, origin, now=now, max_future_skew=max_future_skew, denied_context_keys=denied_context_keys)
    return DecodeResult([DecodedEvent(as_billable(d.event), d.origin, d.index) for d in slow.events], slow.rejections)


def _fast_message(raw: bytes, origin: MessageOrigin, checks: _Checks) -> DecodeResult | None:
    """The message decoded the fast way, or None to let the pydantic path say what is wrong."""
    try:
        raw.decode("utf-8")  # msgspec keeps `Raw` spans unchecked: the whole message must be UTF-8
    except UnicodeDecodeError:
        return None
    text = raw.strip()
    head = text[:1]
    if head == b"{":
        try:
            wire = _SINGLE.decode(raw)
        except _UNREADABLE:
            return None
        event = _accept(wire, checks, text)
        return None if event is None else DecodeResult([DecodedEvent(event, origin, None)], [])
    if head != b"[":
        return None
    try:
        batch: list[Any] = _BATCH.decode(raw)
    except msgspec.ValidationError:
        batch = []  # one element is off: look at each on its own
    except (msgspec.DecodeError, RecursionError):
        return None
    else:
        if not 0 < len(batch) <= MAX_BATCH_EVENTS:
            return None
    # Each element's bytes as they arrived: its fingerprint, and its dead letter if rejected.
    try:
        elements: list[msgspec.Raw] = _ELEMENTS.decode(raw)
    except _UNREADABLE:
        return None
    if not 0 < len(elements) <= MAX_BATCH_EVENTS:
        return None
    if not batch:
        batch = [_element(e) for e in elements]
    events: list[DecodedEvent] = []
    rejections: list[Rejection] = []
    for index, wire in enumerate(batch):
        event = _accept(wire, checks, elements[index]) if wire is not None else None
        if event is not None:
            events.append(DecodedEvent(event, origin, index))
            continue
        outcome = _slow_element(bytes(elements[index]), origin, index, checks)
        (rejections if isinstance(outcome, Rejection) else events).append(outcome)
    return DecodeResult(events, rejections)


def _element(raw: msgspec.Raw) -> _WireEvent | None:
    try:
        return _SINGLE.decode(raw)
    except _UNREADABLE:
        return None


def _slow_element(raw: bytes, origin: MessageOrigin, index: int, checks: _Checks) -> DecodedEvent | Rejection:
    """One element through the pydantic path, which names what is wrong with it."""
    try:
        item = json.loads(raw)
    except (ValueError, RecursionError):
        item = None  # decode_item reports it as not an event
    outcome = decode_item(
        item,
        origin=origin,
        index=index,
        raw=raw,
        now=checks.now,
        max_future_skew=checks.max_future_skew,
        expected_project=checks.expected_project,
        denied_context_keys=checks.denied,
    )
    if isinstance(outcome, Rejection):
        return outcome
    return DecodedEvent(as_billable(outcome.event, raw), origin, index)


def _accept(w: _WireEvent, checks: _Checks, arrived: bytes | msgspec.Raw) -> BillableEvent | None:
    """The event if every rule holds; None when anything is off (the slow path decides).

    `arrived` is the event's own bytes in the message: its fingerprint is their digest.
    """
    timestamp = _timestamp(w.timestamp)
    if timestamp is None or timestamp - checks.now > checks.max_future_skew:
        return None
    if checks.expected_project is not None and w.project_id != checks.expected_project:
        return None
    u = w.usage
    if u.cache_read_tokens + u.cache_write_tokens > u.input_tokens or u.reasoning_tokens > u.output_tokens:
        return None
    if u.total_tokens is not None and u.total_tokens != u.input_tokens + u.output_tokens:
        return None
    if w.duration_ms is not None and not math.isfinite(w.duration_ms):
        return None
    for t in w.tool_calls:
        if t.duration_ms is not None and not math.isfinite(t.duration_ms):
            return None
    provider_cost = None
    if w.provider_cost is not None:
        try:
            provider_cost = _parse_decimal_string(w.provider_cost)
        except ValueError:
            return None
    context_bytes, metadata_bytes = bytes(w.context), bytes(w.provider_metadata)
    if not (_plainly_fine(context_bytes, checks) and _plainly_fine(metadata_bytes, checks)):
        context = _free_form(w.context)
        metadata = _free_form(w.provider_metadata)
        if context is None or metadata is None:
            return None
        item = {"context": context, "provider_metadata": metadata}
        if free_form_problem(item) is not None or denied_context_path(item, checks.denied) is not None:
            return None
        try:
            _bounded_object(context, "context")
            _bounded_object(metadata, "provider_metadata")
        except ValueError:
            return None
    tools = tuple(w.tool_calls)  # decoded as the core's own struct
    return BillableEvent(  # positionally, in field order: a fifth of the cost of keywords
        w.event_id,
        w.project_id,
        timestamp,
        w.source,
        w.agent_name,
        w.session_id,
        w.handoff_chain,
        w.operation,
        w.method,
        w.provider,
        w.model,
        BillableUsage(u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens),
        tools,
        w.finish_reason,
        w.duration_ms,
        w.error,
        provider_cost,
        _ENCODER.encode(w.tool_calls).decode() if tools else "[]",
        metadata_bytes.decode(),
        context_bytes.decode(),
        digest(arrived),
    )


def _timestamp(text: str) -> datetime | None:
    if not _RFC3339.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if EARLIEST_TIMESTAMP <= moment < LATEST_TIMESTAMP else None


# Short enough that its compact JSON cannot outgrow the bound (a number re-spelled grows
# at most a few times), shallow enough that nesting cannot be too deep.
_PLAIN_BYTES = MAX_OBJECT_JSON_BYTES // 8
_PLAIN_DEPTH = 32
_BIG_NUMBER = rb"[0-9][eE][+-]?[0-9]{3}|[0-9]{300}"


def _plainly_fine(data: bytes, checks: _Checks) -> bool:
    """True when a free-form object needs none of the slow checks (the common case).

    A small object without escapes (no lone surrogates), without three-digit exponents
    (no float overflow), not nested deeply, and without a denied key's text anywhere.
    Anything else is parsed and checked exactly.
    """
    if data == _EMPTY_OBJECT:
        return True
    if len(data) > _PLAIN_SEEN_BYTES:
        return _judged_plain(data, checks)
    seen = checks.plain.get(data)
    if seen is None:
        seen = _judged_plain(data, checks)
        if len(checks.plain) >= _PLAIN_SEEN_MAX:
            checks.plain.clear()  # bounded: unusual traffic with unique objects pays the scan
        checks.plain[data] = seen
    return seen


def _judged_plain(data: bytes, checks: _Checks) -> bool:
    if len(data) > _PLAIN_BYTES or not data.startswith(b"{") or b"\\" in data:
        return False
    if data.count(b"{") + data.count(b"[") > _PLAIN_DEPTH:
        return False
    return checks.doubtful_text.search(data) is None


def _free_form(raw: msgspec.Raw) -> dict[str, Any] | None:
    """A free-form object parsed for its checks ({} when empty), or None if it is not one."""
    data = bytes(raw)
    if data == _EMPTY_OBJECT:
        return {}
    if len(data) > MAX_OBJECT_JSON_BYTES or not data.startswith(b"{"):
        return None  # maybe too large, maybe not an object: the slow path measures exactly
    try:
        value = _ANY.decode(data)
    except _UNREADABLE:
        return None
    return value if isinstance(value, dict) else None
