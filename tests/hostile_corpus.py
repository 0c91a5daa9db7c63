"""Hostile input: every kind of bad Kafka message value a consumer must survive.

`build_corpus(now)` gives one `HostileCase` per kind: the message value and key, the dead
letters it must produce (reason, batch index and the exact bytes each carries), and the
good events inside it that must still be billed. The unit tests feed it to
`decode_message`; the integration test publishes it through a real broker and worker.

Batches are built by joining the elements' own bytes, so each element's expected dead
letter is the exact slice of the message it arrived in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stream_app.core.decode import MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES, RejectReason
from stream_app.core.free_form import REMOVED_MARKER
from tests.factories import OMIT, make_event_dict

PROJECT = "proj-hostile"
OTHER_PROJECT = "proj-someone-else"


@dataclass(frozen=True)
class ExpectedLetter:
    """One dead letter a case must produce."""

    reason: str
    index: int | None  # batch index; None when the whole message is rejected
    raw: bytes  # the original bytes: the whole message, or the element as it was sent
    # False when the letter can only hold a prefix: decode keeps 64 KiB of an oversized
    # message, and a dead letter must fit in one Kafka message.
    whole: bool = True


@dataclass(frozen=True)
class HostileCase:
    """One Kafka message of the corpus."""

    name: str
    value: bytes | None
    key: bytes | None
    letters: tuple[ExpectedLetter, ...]
    good_events: tuple[dict[str, Any], ...] = ()
    # Over Kafka's default 1 MiB message limit: the events topic must be made to allow it.
    large: bool = False

    @property
    def good_event_ids(self) -> tuple[str, ...]:
        return tuple(event["event_id"] for event in self.good_events)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(letter.reason for letter in self.letters)

    @property
    def reason(self) -> str:
        """The case's reason code; a batch with several gives them joined by `+`."""
        return "+".join(dict.fromkeys(self.reasons))


def compact(value: Any) -> bytes:
    """JSON as a compact producer writes it (UTF-8, no spaces)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def build_corpus(now: datetime, *, project: str = PROJECT) -> list[HostileCase]:
    """Every kind of hostile message, stamped around `now` (windows and skew use it)."""
    key = project.encode()
    made = _CaseMaker(now, project)
    ev = made.event  # a fresh valid event dict, with overrides
    cases: list[HostileCase] = []

    def whole(name: str, value: bytes | None, reason: str, *, message_key: bytes | None = key, **kw: Any) -> None:
        kept = value or b""
        cases.append(HostileCase(name, value, message_key, (ExpectedLetter(reason, None, kept, **kw),)))

    def bad_event(name: str, reason: str = RejectReason.INVALID_EVENT, **overrides: Any) -> None:
        whole(name, compact(ev(**overrides)), reason)

    def text_event(name: str, reason: str, edit: Callable[[str], str], **overrides: Any) -> None:
        """An event whose JSON text is edited after encoding (for what json.dumps cannot write)."""
        whole(name, edit(compact(ev(**overrides)).decode()).encode(), reason)

    # --- not even a message ------------------------------------------------------------
    whole("empty_value", b"", RejectReason.EMPTY_MESSAGE)
    whole("whitespace_only", b" \n\t\r ", RejectReason.EMPTY_MESSAGE)
    whole("tombstone_null_value", None, RejectReason.EMPTY_MESSAGE)

    # --- bytes that are not UTF-8 ------------------------------------------------------
    whole("invalid_utf8_in_a_string", compact(ev(agent_name="AGENT")).replace(b"AGENT", b"\xff\xfeA"), "invalid_utf8")
    whole("utf8_encoded_surrogate", compact(ev(agent_name="AGENT")).replace(b"AGENT", b"\xed\xa0\x80"), "invalid_utf8")
    whole("overlong_utf8", compact(ev(agent_name="AGENT")).replace(b"AGENT", b"\xc0\xaf"), "invalid_utf8")
    whole("latin1_text", json.dumps(ev(agent_name="Zürich"), ensure_ascii=False).encode("latin-1"), "invalid_utf8")
    whole("utf16_with_bom", json.dumps(ev()).encode("utf-16"), "invalid_utf8")
    whole("utf32", json.dumps(ev()).encode("utf-32"), "invalid_utf8")
    whole("binary_garbage", bytes(range(256)) * 4, "invalid_utf8")

    # --- text that is not JSON ---------------------------------------------------------
    whole("utf8_bom_before_json", b"\xef\xbb\xbf" + compact(ev()), "invalid_json")
    whole("broken_json", b'{"schema_version": 1, "event_id": ', "invalid_json")
    event_bytes = compact(ev())
    whole("truncated_event", event_bytes[: len(event_bytes) // 2], "invalid_json")
    whole("truncated_batch", compact([ev(), ev()])[:-3], "invalid_json")
    whole("trailing_garbage", compact(ev()) + b" and then some", "invalid_json")
    whole("two_events_concatenated", compact(ev()) + compact(ev()), "invalid_json")
    whole("python_repr_not_json", repr(ev()).encode(), "invalid_json")
    text_event("nan_literal", "invalid_json", lambda t: t.replace('"duration_ms":812.0', '"duration_ms":NaN'))
    text_event("infinity_literal", "invalid_json", lambda t: t.replace('"region":"eu-west-1"', '"region":-Infinity'))
    text_event(
        "integer_of_5000_digits",
        "invalid_json",
        lambda t: t.replace('"input_tokens":1200', '"input_tokens":' + "9" * 5000),
    )
    whole("deeply_nested_arrays", b"[" * 50_000 + b"]" * 50_000, "invalid_json")
    whole("deeply_nested_objects", b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "invalid_json")

    # --- JSON that is not an event or a batch ----------------------------------------
    whole("json_number", b"42", "not_an_event")
    whole("json_string", b'"an event"', "not_an_event")
    whole("json_null", b"null", "not_an_event")
    whole("json_boolean", b"true", "not_an_event")

    # --- batches that are wrong as a whole ---------------------------------------------
    whole("empty_batch", b"[]", "empty_batch")
    whole("empty_batch_with_spaces", b"[ \n ]", "empty_batch")
    minimal = [made.minimal_event() for _ in range(MAX_BATCH_EVENTS + 1)]
    whole("batch_of_1001_events", compact(minimal), "batch_too_large")
    # Realistic events: about 800 KB, too big for a dead letter to hold whole.
    whole("batch_of_1001_large_events", compact([ev() for _ in range(MAX_BATCH_EVENTS + 1)]), "batch_too_large", whole=False)
    padded = compact([ev(context={"pad": "p" * 7000}) for _ in range(620)])
    assert len(padded) > MAX_MESSAGE_BYTES
    cases.append(
        HostileCase(
            "message_over_4_mib",
            padded,
            key,
            (ExpectedLetter("message_too_large", None, padded, whole=False),),
            large=True,
        )
    )

    # --- events missing what they must have --------------------------------------------
    bad_event("missing_event_id", event_id=OMIT)
    bad_event("missing_timestamp", timestamp=OMIT)
    bad_event("missing_project_id", project_id=OMIT)
    bad_event("missing_method", method=OMIT)
    bad_event("missing_usage", usage=OMIT)
    bad_event("missing_input_tokens", usage={"input_tokens": OMIT, "cache_read_tokens": 0})
    bad_event("missing_output_tokens", usage={"output_tokens": OMIT})
    whole("empty_object", b"{}", "invalid_event")

    # --- unknown and misspelled fields: never a silent zero ----------------------------
    bad_event("unknown_top_level_field", prompt="You are a helpful assistant")
    bad_event("unknown_usage_field", usage={"audio_tokens": 40})
    bad_event("misspelled_usage_field", usage={"input_tokens": OMIT, "input_token": 1200, "cache_read_tokens": 0})
    bad_event("misspelled_optional_usage_field", usage={"cache_read_tokens": OMIT, "cached_tokens": 800})
    bad_event("camel_case_usage_fields", usage={"inputTokens": 1200, "outputTokens": 350})
    many = ev()
    many.update({f"unknown_{i}": i for i in range(20_000)})
    whole("twenty_thousand_unknown_fields", compact(many), "invalid_event")

    # --- wrong types for each important field ------------------------------------------
    bad_event("tokens_negative", usage={"output_tokens": -1})
    bad_event("tokens_float", usage={"input_tokens": 1200.0})
    bad_event("tokens_string", usage={"input_tokens": "1200"})
    bad_event("tokens_boolean", usage={"output_tokens": True})
    bad_event("tokens_null", usage={"input_tokens": None})
    bad_event("tokens_over_a_trillion", usage={"input_tokens": 10**13, "cache_read_tokens": 0})
    usage_list = ev()
    usage_list["usage"] = [1200, 350]
    whole("usage_is_a_list", compact(usage_list), "invalid_event")
    bad_event("event_id_is_a_number", event_id=12345)
    bad_event("event_id_empty", event_id="")
    bad_event("event_id_too_long", event_id="e" * 129)
    bad_event("project_id_null", project_id=None)
    bad_event("agent_name_empty", agent_name="")
    bad_event("method_unknown", method="batch")
    bad_event("provider_is_an_object", provider={"name": "openai"})
    bad_event("handoff_chain_is_a_string", handoff_chain="router-agent,triage-agent")
    bad_event("tool_calls_wrong_shape", tool_calls=["search_kb"])
    bad_event("duration_negative", duration_ms=-5.0)
    bad_event("context_is_a_list", context=["region", "eu-west-1"])

    # --- token counts that break the rules ---------------------------------------------
    bad_event("cache_exceeds_input", usage={"input_tokens": 100, "cache_read_tokens": 80, "cache_write_tokens": 30})
    bad_event("reasoning_exceeds_output", usage={"output_tokens": 10, "reasoning_tokens": 11})
    bad_event("total_mismatch", usage={"total_tokens": 1551})

    # --- absurd timestamps --------------------------------------------------------------
    bad_event("timestamp_1970", timestamp="1970-01-01T00:00:00Z")
    bad_event("timestamp_year_3000", timestamp="3000-01-01T00:00:00Z")
    bad_event("timestamp_without_offset", timestamp=now.replace(tzinfo=None).isoformat())
    bad_event("timestamp_epoch_seconds", timestamp=int(now.timestamp()))
    bad_event("timestamp_epoch_millis", timestamp=int(now.timestamp() * 1000))
    bad_event("timestamp_not_a_date", timestamp="yesterday")
    bad_event("timestamp_offset_out_of_range", timestamp="2026-01-01T00:00:00+99:00")
    bad_event("future_beyond_skew", "future_timestamp", timestamp=now + timedelta(days=1))

    # --- payloads beyond their bounds, and values JSON lets through ---------------------
    bad_event("context_over_16_kib", context={"blob": "x" * (17 * 1024)})
    bad_event("provider_metadata_over_16_kib", provider_metadata={"raw_response": "y" * (17 * 1024)})
    bad_event("error_text_over_bound", error="E" * 5000)
    deep: Any = 1
    for _ in range(100):
        deep = {"a": deep}
    bad_event("context_nested_100_deep", context={"deep": deep})
    text_event("context_lone_surrogate", "invalid_event", lambda t: t.replace('"eu-west-1"', '"\\ud800"'))
    text_event("context_number_overflows_float", "invalid_event", lambda t: t.replace('"eu-west-1"', "1e400"))
    text_event("agent_name_lone_surrogate", "invalid_event", lambda t: t.replace('"triage-agent"', '"\\udfff"', 1))

    # --- versions, keys and money -------------------------------------------------------
    bad_event("schema_version_2", "unsupported_schema_version", schema_version=2)
    bad_event("schema_version_string", schema_version="1")
    bad_event("schema_version_boolean", schema_version=True)
    bad_event("schema_version_missing", schema_version=OMIT)
    bad_event("project_key_mismatch", "project_key_mismatch", project_id=OTHER_PROJECT)
    whole("key_not_utf8", compact(ev()), "project_key_mismatch", message_key=b"\xff" + key)
    bad_event("provider_cost_float", provider_cost=0.25)
    bad_event("provider_cost_too_many_places", provider_cost="0.0000000000000000001")
    bad_event("provider_cost_negative", provider_cost="-1.00")
    bad_event("provider_cost_nan_string", provider_cost="NaN")
    bad_event("provider_cost_huge_exponent", provider_cost="1E+99999999999999999999")
    bad_event("provider_cost_over_bound", provider_cost="1" + "0" * 16)
    text_event(
        "duplicate_key_last_one_bad",
        "invalid_event",
        lambda t: t[:-1] + ',"usage":{"input_tokens":-5,"output_tokens":1}}',
    )

    # --- prompt text a producer should not have sent (kept out of every table) -----------
    def prompt_event(name: str, context: dict[str, Any], redacted_context: dict[str, Any]) -> None:
        event = ev(context=context)
        letter = ExpectedLetter(RejectReason.PROMPT_TEXT_IN_CONTEXT, None, compact({**event, "context": redacted_context}))
        cases.append(HostileCase(name, compact(event), key, (letter,)))

    prompt_event("prompt_in_context", {"prompt": "SECRET-PROMPT tell me"}, {"prompt": REMOVED_MARKER})
    prompt_event(
        "messages_nested_in_context",
        {"region": "eu", "request": {"messages": [{"role": "user", "content": "SECRET-PROMPT"}]}},
        {"region": "eu", "request": {"messages": REMOVED_MARKER}},
    )

    # --- batches mixing good and bad events --------------------------------------------
    cases.extend(made.mixed_batches())
    return cases


class _CaseMaker:
    """Events stamped shortly before `now`, and the batch cases."""

    def __init__(self, now: datetime, project: str) -> None:
        self.now = now
        self.project = project
        self.key = project.encode()
        self._tick = 0

    def event(self, **overrides: Any) -> dict[str, Any]:
        self._tick += 1
        overrides.setdefault("timestamp", self.now - timedelta(seconds=1 + self._tick % 50))
        overrides.setdefault("project_id", self.project)
        return make_event_dict(**overrides)

    def minimal_event(self) -> dict[str, Any]:
        """A valid event with only the required fields."""
        full = self.event()
        return {
            name: full[name]
            for name in ("schema_version", "event_id", "timestamp", "source", "project_id", "agent_name", "method", "provider", "model")
        } | {"usage": {"input_tokens": 10, "output_tokens": 2}}

    def batch(self, name: str, elements: list[tuple[str | None, Any]], *, separator: bytes = b",", key: bytes | None = None) -> HostileCase:
        """A batch of (reason or None for good, element) joined by `separator`."""
        parts = [element if isinstance(element, bytes) else compact(element) for _, element in elements]
        value = b"[" + separator.join(parts) + b"]"
        letters = tuple(
            ExpectedLetter(reason, index, part)
            for index, ((reason, _), part) in enumerate(zip(elements, parts, strict=True))
            if reason is not None
        )
        good = tuple(element for reason, element in elements if reason is None)
        return HostileCase(name, value, self.key if key is None else key or None, letters, good)

    def mixed_batches(self) -> list[HostileCase]:
        ev = self.event
        future = self.now + timedelta(hours=2)
        surrogate_id = compact(ev(method="bad")).replace(b'"method":"bad"', b'"method":"bad","x":"\\ud83d"')
        escapes = b'{"schema_version":1,"event_id":"caf\\u00e9","input_tokens":1E3}'
        return [
            self.batch(
                "mixed_batch_each_bad_alone",
                [
                    (None, ev()),
                    ("invalid_event", ev(usage={"input_tokens": OMIT, "input_token": 1200, "cache_read_tokens": 0})),
                    (None, ev()),
                    ("invalid_event", ev(usage={"input_tokens": 10, "cache_read_tokens": 11})),
                    ("not_an_event", 7),
                    (None, ev()),
                    ("future_timestamp", ev(timestamp=future)),
                    ("project_key_mismatch", ev(project_id=OTHER_PROJECT)),
                    ("unsupported_schema_version", ev(schema_version=3)),
                    ("invalid_event", ev(provider_cost=1.5)),
                    (None, ev()),
                ],
            ),
            self.batch(
                "batch_of_non_objects",
                [("not_an_event", 1), ("not_an_event", "x"), ("not_an_event", None), ("not_an_event", True),
                 ("not_an_event", []), ("invalid_event", {}), (None, ev())],
            ),
            self.batch("batch_inside_a_batch", [("not_an_event", [ev()]), (None, ev())]),
            self.batch(
                "batch_spacing_and_escapes_kept_byte_for_byte",
                [(None, ev()), ("invalid_event", escapes), ("invalid_event", surrogate_id), (None, ev())],
                separator=b" ,\n\t ",
            ),
            self.batch(
                "batch_one_bad_among_500_good",
                [(None, ev()) for _ in range(250)]
                + [("invalid_event", ev(usage={"output_tokens": -1}))]
                + [(None, ev()) for _ in range(249)],
            ),
            self.batch(
                "batch_keyless_mixed_projects_checked_per_event",
                [(None, ev()), ("invalid_event", ev(method="chat")), (None, ev(project_id=OTHER_PROJECT))],
                key=b"",
            ),
            self.batch(
                "batch_every_element_bad",
                [("invalid_event", ev(usage={"input_tokens": -1})), ("invalid_event", ev(timestamp="1970-01-01T00:00:00Z")),
                 ("future_timestamp", ev(timestamp=future))],
            ),
            self.batch(
                "batch_element_deeply_nested",
                [(None, ev()), ("not_an_event", b"[" * 500 + b"]" * 500), ("invalid_event", ev(context={"d": _nested(80)}))],
            ),
        ]


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@dataclass
class CorpusTotals:
    """What the corpus must produce, summed over its cases."""

    letters: int = 0
    good_events: list[dict[str, Any]] = field(default_factory=list)
    by_reason: dict[str, int] = field(default_factory=dict)


def corpus_totals(cases: list[HostileCase]) -> CorpusTotals:
    totals = CorpusTotals()
    for case in cases:
        totals.letters += len(case.letters)
        totals.good_events.extend(case.good_events)
        for reason in case.reasons:
            totals.by_reason[reason] = totals.by_reason.get(reason, 0) + 1
    return totals
