"""The fast decoder accepts exactly what the pydantic path accepts, with the same values.

Differential tests: generated events, valid and broken in every way the schema knows,
go through `decode_billable_message` (msgspec, the worker's hot path) and through
`decode_message` (pydantic, the schema of record). Both must accept the same events with
the same content, and reject the same ones with the same reason code and detail (the
fast path hands every doubtful event to the pydantic path, which names the problem).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.core.billable import as_billable
from stream_app.core.counting import content_of
from stream_app.core.decode import MessageOrigin, decode_message
from stream_app.core.fast_decode import decode_billable_message
from tests.factories import OMIT, make_event_dict

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)
ORIGIN = MessageOrigin("t", 0, 7, b"proj-acme")


def both(value: bytes, origin: MessageOrigin = ORIGIN):
    fast = decode_billable_message(value, origin, now=NOW, max_future_skew=SKEW)
    slow = decode_message(value, origin, now=NOW, max_future_skew=SKEW)
    return fast, slow


def assert_same(value: bytes, origin: MessageOrigin = ORIGIN) -> None:
    fast, slow = both(value, origin)
    assert [e.index for e in fast.events] == [e.index for e in slow.events]
    for f, s in zip(fast.events, slow.events, strict=True):
        assert content_of(f.event) == content_of(s.event) or _same_after_json(f.event, s.event)
        assert (f.event.event_id, f.event.project_id, f.event.usage) == (s.event.event_id, s.event.project_id, as_billable(s.event).usage)
        assert f.event.timestamp == s.event.timestamp and f.event.provider_cost == s.event.provider_cost
    assert [(r.reason, r.detail, r.index, r.raw) for r in fast.rejections] == [
        (r.reason, r.detail, r.index, r.raw) for r in slow.rejections
    ]


def _same_after_json(a, b) -> bool:
    from stream_app.core.counting import differing_fields

    return differing_fields(content_of(a), content_of(b)) == []


# --- values that are valid, borderline, or wrong --------------------------------------------

names = st.one_of(
    st.text(min_size=1, max_size=8),
    st.sampled_from(["", "x" * 256, "x" * 257, "é", "\ud800x", " padded "]),
    st.integers(), st.none(), st.booleans(),
)
tokens = st.one_of(st.integers(0, 10**6), st.sampled_from([-1, 10**12, 10**12 + 1, 2**64, 1.0, 2.5, True, "5", None]))
timestamps = st.one_of(
    st.datetimes(min_value=datetime(2010, 1, 1), max_value=datetime(2101, 1, 1), timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.sampled_from([
        "2026-11-22T11:59:00Z", "2026-11-22T11:59:00.5Z", "2026-11-22T11:59:00.123456+01:00", "2026-11-22T11:59:00.1234567Z",
        "2026-11-22 11:59:00Z", "2026-11-22T11:59:00", "2026-11-22T11:59:00+0100", "2026-11-22t11:59:00z",
        "2026-11-22T12:10:00Z", "2014-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "1700000000", "2026-02-30T00:00:00Z",
        "2026-11-22T23:59:60Z", "2026-11-22T11:59:00-00:00",
    ]),
    st.integers(0, 2_000_000_000), st.none(),
)
decimals = st.one_of(st.none(), st.sampled_from(["0.0123", "1E+2", "1e-20", "-1", "NaN", "1_000", " 1.5 ", "1e999999", "1" * 20, "0.000000000000000001"]), st.floats(allow_nan=False), st.integers())
durations = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, min_value=-5, max_value=1e6), st.integers(-1, 10**6), st.booleans(), st.text(max_size=3))
free_forms = st.one_of(
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=10), st.booleans(), st.none()), max_size=4),
    st.sampled_from([{}, {"prompt": "hi"}, {"nested": {"messages": []}}, {"a": [[[[[]]]]]}, {"n": 1e300}, {"x" * 10: "y" * 5000}, [], "text", 3]),
)
tool_calls = st.lists(
    st.fixed_dictionaries(
        {"name": names},
        optional={"duration_ms": durations, "error": st.one_of(st.none(), st.text(max_size=4), st.just("e" * 1025)), "extra": st.just(1)},
    ),
    max_size=3,
)


@st.composite
def event_dicts(draw) -> dict:
    usage = {
        "input_tokens": draw(tokens), "output_tokens": draw(tokens),
        "cache_read_tokens": draw(st.one_of(st.just(OMIT), tokens)), "cache_write_tokens": draw(st.one_of(st.just(OMIT), tokens)),
        "reasoning_tokens": draw(st.one_of(st.just(OMIT), tokens)), "total_tokens": draw(st.one_of(st.just(OMIT), tokens)),
    }
    if draw(st.booleans()):
        usage["input_token"] = 5  # a misspelled field
    fields = {
        "schema_version": draw(st.sampled_from([1, 1, 1, 2, True, 1.0, "1"])),
        "event_id": draw(st.one_of(st.uuids().map(str), names)),
        "timestamp": draw(timestamps),
        "project_id": draw(st.sampled_from(["proj-acme", "proj-acme", "someone-else"])),
        "agent_name": draw(names), "session_id": draw(st.one_of(st.none(), names)),
        "method": draw(st.sampled_from(["generate", "stream", "batch"])),
        "provider": draw(st.sampled_from(["openai", "anthropic"])), "model": draw(st.sampled_from(["gpt-4o", "x"])),
        "handoff_chain": draw(st.one_of(st.lists(st.text(min_size=1, max_size=3), max_size=3), st.just(["a"] * 65), st.just([""]))),
        "tool_calls": draw(tool_calls), "duration_ms": draw(durations), "error": draw(st.one_of(st.none(), st.text(max_size=4))),
        "provider_cost": draw(decimals), "context": draw(free_forms), "provider_metadata": draw(free_forms),
        "usage": usage,
    }
    event = make_event_dict(**fields)
    for name in draw(st.lists(st.sampled_from(sorted(event)), max_size=2)):
        event.pop(name, None)  # a missing field
    if draw(st.integers(0, 9)) == 0:
        event["unknown_field"] = 1
    return event


def encode(value) -> bytes:
    return json.dumps(value).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=event_dicts())
def test_one_event_the_fast_path_agrees_with_pydantic(event):
    assert_same(encode(event))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(event_dicts(), min_size=1, max_size=6))
def test_a_batch_the_fast_path_agrees_with_pydantic(events):
    assert_same(encode(events))


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=60) | st.sampled_from([b"", b"[]", b"[1]", b"{}", b'[{"a":1}]', b"NaN", b"[NaN]", b"[" * 100 + b"]" * 100]))
def test_anything_the_fast_path_agrees_with_pydantic(data):
    assert_same(data)


def test_a_valid_batch_takes_the_fast_path_and_keeps_free_form_json_as_sent():
    events = [make_event_dict(project_id="proj-acme", timestamp=NOW.isoformat(), context={"b": 1, "a": "ü"}) for _ in range(3)]
    raw = b"[" + b",".join(json.dumps(e, ensure_ascii=False).encode() for e in events) + b"]"

    fast, slow = both(raw)

    assert len(fast.events) == 3 and not fast.rejections
    assert fast.events[0].event.context_json == json.dumps(events[0]["context"], ensure_ascii=False)
    assert as_billable(slow.events[0].event).context_json == '{"a":"ü","b":1}'  # the slow path re-encodes
    assert_same(raw)


def test_one_bad_element_is_named_and_the_rest_is_billed():
    good = make_event_dict(project_id="proj-acme", timestamp=NOW.isoformat())
    bad = make_event_dict(project_id="proj-acme", timestamp=NOW.isoformat(), usage={"output_tokens": -1})
    raw = encode([good, bad, good | {"event_id": "other"}])

    fast, _ = both(raw)

    assert [e.index for e in fast.events] == [0, 2]
    assert [(r.index, r.reason) for r in fast.rejections] == [(1, "invalid_event")]
    assert_same(raw)


def test_identical_bytes_give_identical_fingerprints_and_other_bytes_other_ones():
    event = make_event_dict(project_id="proj-acme", timestamp=NOW.isoformat())
    a = decode_billable_message(encode(event), ORIGIN, now=NOW, max_future_skew=SKEW).events[0].event
    b = decode_billable_message(encode(event), ORIGIN, now=NOW, max_future_skew=SKEW).events[0].event
    c = decode_billable_message(encode(event | {"agent_name": "z"}), ORIGIN, now=NOW, max_future_skew=SKEW).events[0].event

    assert a.fingerprint == b.fingerprint != c.fingerprint


MUTATIONS = {
    "schema_version": st.sampled_from([1, 2, True, 1.0]),
    "timestamp": timestamps,
    "agent_name": names,
    "session_id": st.one_of(st.none(), names),
    "method": st.sampled_from(["generate", "stream", "batch"]),
    "tool_calls": tool_calls,
    "duration_ms": durations,
    "provider_cost": decimals,
    "context": free_forms,
    "provider_metadata": free_forms,
    "handoff_chain": st.one_of(st.lists(names, max_size=3), st.just(["a"] * 65)),
    "usage": st.fixed_dictionaries({"input_tokens": tokens, "output_tokens": tokens}, optional={"cache_read_tokens": tokens, "total_tokens": tokens}),
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(MUTATIONS)), data=st.data())
def test_a_valid_event_with_one_field_changed_the_fast_path_agrees(field, data):
    event = make_event_dict(project_id="proj-acme", timestamp=(NOW - timedelta(seconds=5)).isoformat())
    event[field] = data.draw(MUTATIONS[field], label=field)

    assert_same(encode([event, make_event_dict(project_id="proj-acme", timestamp=NOW.isoformat())]))


def test_valid_traffic_never_takes_the_slow_path(monkeypatch):
    from stream_app.core import fast_decode
    from tests.factories import varied_events

    def refuse(*args, **kwargs):
        raise AssertionError("the slow path was taken for a valid event")

    monkeypatch.setattr(fast_decode, "decode_message", refuse)
    monkeypatch.setattr(fast_decode, "decode_item", refuse)
    events = [e.model_copy(update={"project_id": "proj-acme"}) for e in varied_events(300, seed=5, now=NOW)]
    raw = encode([e.wire_dict() for e in events])

    result = decode_billable_message(raw, ORIGIN, now=NOW, max_future_skew=SKEW)

    assert len(result.events) == 300 and not result.rejections


def test_bytes_that_are_not_utf8_inside_a_free_form_object_go_the_slow_way():
    event = make_event_dict(project_id="proj-acme", timestamp=NOW.isoformat(), context={"k": "PLACEHOLDER"})
    raw = encode([event]).replace(b"PLACEHOLDER", b"\xff\xfeA")

    fast, slow = both(raw)

    assert [r.reason for r in fast.rejections] == ["invalid_utf8"] and not fast.events
    assert_same(raw)


def test_nesting_deeper_than_msgspec_reads_goes_the_slow_way():
    event = make_event_dict(project_id="proj-acme", timestamp=NOW.isoformat())
    deep = encode([event]).replace(b'"region": "eu-west-1"', b'"region": ' + b"[" * 50_000 + b"]" * 50_000)

    assert_same(deep)
    assert_same(b"[" * 100_000 + b"]" * 100_000)


def _corpus():
    from tests.hostile_corpus import build_corpus

    return build_corpus(NOW)


@pytest.mark.parametrize("case", _corpus(), ids=lambda case: case.name)
def test_every_hostile_corpus_case_decodes_the_same_both_ways(case):
    fast = decode_billable_message(case.value, MessageOrigin("t", 2, 41_017, case.key), now=NOW, max_future_skew=SKEW)
    slow = decode_message(case.value, MessageOrigin("t", 2, 41_017, case.key), now=NOW, max_future_skew=SKEW)

    assert [e.index for e in fast.events] == [e.index for e in slow.events]
    assert [(r.reason, r.detail, r.index) for r in fast.rejections] == [(r.reason, r.detail, r.index) for r in slow.rejections]
    assert [r.raw for r in fast.rejections] == [r.raw for r in slow.rejections]


@pytest.mark.parametrize(
    "timestamp",
    [
        "٢٠٢٦-11-22T11:59:00Z",  # Arabic-Indic digits in the year
        "2026-11-22T11:59:0٠Z",
        "2026-11-22T11:59:00.１Z",  # a fullwidth digit in the fraction
        "2026-11-22t11:59:00Z",
        "2026-11-22T11:59:00z",
        "2026-11-22T11:59:00.1234567Z",
        "2026-11-22 11:59:00Z",
    ],
)
def test_timestamps_in_other_spellings_are_decided_as_pydantic_decides(timestamp):
    assert_same(encode(make_event_dict(project_id="proj-acme", timestamp=timestamp)))
    assert_same(encode([make_event_dict(project_id="proj-acme", timestamp=timestamp)] * 2))


def test_a_context_judged_once_is_judged_by_the_deny_list_in_force_each_time():
    """The fast path remembers which small contexts were plainly fine, per deny-list."""
    event = make_event_dict(project_id="proj-acme", timestamp=NOW.isoformat(), context={"note": "tenant-prompt"})
    raw = encode([event])

    def billed(denied: frozenset[str]) -> int:
        result = decode_billable_message(raw, ORIGIN, now=NOW, max_future_skew=SKEW, denied_context_keys=denied)
        return len(result.events)

    for _ in range(2):  # the second time from what was remembered
        assert billed(frozenset({"note"})) == 0
        assert billed(frozenset({"prompt"})) == 1  # "prompt" in a value is not a denied key
        assert billed(frozenset()) == 1
    assert_same(raw)
