"""The hostile corpus through `decode_message` and into dead letters, no broker.

Every bad item is rejected with the expected reason, its original bytes and its origin;
every good event beside it is still decoded; every rejection becomes a dead letter that
fits in one Kafka message and reads back to the same reason, origin and bytes.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from stream_app.core.dead_letter import MAX_DEAD_LETTER_BYTES, dead_letter_record, parse_dead_letter
from stream_app.core.decode import DecodeResult, MessageOrigin, RejectReason, decode_message
from tests.hostile_corpus import HostileCase, build_corpus, corpus_totals

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
SKEW = timedelta(seconds=300)
TOPIC = "llm.usage.events"
CORPUS = build_corpus(NOW)
BY_NAME = {case.name: case for case in CORPUS}


def origin_of(case: HostileCase, offset: int = 41_017) -> MessageOrigin:
    return MessageOrigin(TOPIC, 2, offset, case.key)


def decode(case: HostileCase) -> DecodeResult:
    return decode_message(case.value, origin_of(case), now=NOW, max_future_skew=SKEW)


def test_corpus_has_at_least_30_kinds_with_unique_names():
    assert len(BY_NAME) == len(CORPUS) >= 30
    assert len(CORPUS) >= 90


def test_corpus_covers_every_reason_code():
    # These two are decided at write time against the store, not by decoding one message:
    # tests/unit/core/test_counting.py and tests/unit/worker/test_chunk.py cover them.
    write_time = {RejectReason.CONFLICTING_DUPLICATE, RejectReason.SINK_REJECTED}
    codes = {value for name, value in vars(RejectReason).items() if name.isupper()} - write_time

    assert {reason for case in CORPUS for reason in case.reasons} == codes


def test_corpus_has_good_events_beside_bad_ones():
    totals = corpus_totals(CORPUS)

    assert len(totals.good_events) >= 500
    assert sum(1 for case in CORPUS if case.good_events and case.letters) >= 6


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_each_bad_item_is_rejected_with_reason_bytes_and_origin(case: HostileCase):
    result = decode(case)

    got = [(r.index, r.reason) for r in result.rejections]
    assert got == [(letter.index, letter.reason) for letter in case.letters], [r.detail for r in result.rejections]
    for rejection, letter in zip(result.rejections, case.letters, strict=True):
        assert rejection.origin == origin_of(case)
        assert rejection.detail.strip()
        if rejection.reason == "message_too_large":
            # Decode keeps a bounded prefix of an oversized message, and says how big it was.
            assert letter.raw.startswith(rejection.raw) and 0 < len(rejection.raw) < len(letter.raw)
            assert rejection.raw_size == len(letter.raw)
        else:
            assert rejection.raw == letter.raw  # byte for byte: the message, or the element as sent
            assert rejection.raw_size is None


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_no_good_event_beside_a_bad_one_is_lost(case: HostileCase):
    result = decode(case)

    assert [d.event.event_id for d in result.events] == list(case.good_event_ids)
    assert all(d.origin == origin_of(case) for d in result.events)
    # Every element of a batch ends as exactly one of: event or rejection.
    indexes = [d.index for d in result.events] + [r.index for r in result.rejections]
    read_element_by_element = case.value is not None and all(letter.index is not None for letter in case.letters)
    if read_element_by_element and case.value.lstrip().startswith(b"["):
        assert sorted(indexes) == list(range(len(json.loads(case.value))))
    else:
        assert indexes == [None]


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_every_rejection_makes_a_deliverable_dead_letter_that_reads_back(case: HostileCase):
    result = decode(case)

    for rejection, letter in zip(result.rejections, case.letters, strict=True):
        key, value = dead_letter_record(rejection, rejected_at=NOW, consumer_group="usage-pipeline")
        assert len(key) + len(value) <= MAX_DEAD_LETTER_BYTES
        record = json.loads(value)
        assert record["source"] == {
            "topic": TOPIC,
            "partition": 2,
            "offset": 41_017,
            "batch_index": letter.index,
            "key": case.key.decode("utf-8", "replace") if case.key else None,
        }
        kept = base64.b64decode(record["raw_base64"])
        assert record["raw_size"] == len(letter.raw)
        if letter.whole:
            assert kept == letter.raw
            assert record["raw_truncated"] is False
        else:
            assert letter.raw.startswith(kept) and record["raw_truncated"] is True
        if record["raw_text"] is not None:
            assert record["raw_text"].encode() == kept

        read_back = parse_dead_letter(key, value, partition=0, offset=7)
        assert (read_back.reason, read_back.raw, read_back.batch_index) == (letter.reason, kept, letter.index)
        assert read_back.source.topic == TOPIC and read_back.source.offset == 41_017


def test_the_whole_corpus_in_one_chunk_accounts_for_every_item():
    # As the worker sees it: many messages decoded one after another with one clock.
    events, rejections = [], []
    for offset, case in enumerate(CORPUS):
        result = decode_message(case.value, origin_of(case, offset), now=NOW, max_future_skew=SKEW)
        events += result.events
        rejections += result.rejections
    totals = corpus_totals(CORPUS)

    assert len(rejections) == totals.letters
    assert [d.event.event_id for d in events] == [e["event_id"] for e in totals.good_events]
    assert sorted({r.origin.offset for r in rejections}) == [i for i, c in enumerate(CORPUS) if c.letters]


def test_accepted_events_can_be_stored():
    # The sink writes JSON text as UTF-8: whatever decode accepts must encode, with finite numbers.
    for case in CORPUS:
        for decoded in decode(case).events:
            event = decoded.event
            event.model_dump_json().encode("utf-8")
            for obj in (event.context, event.provider_metadata):
                json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("misspelled_usage_field", "usage.input_token"),
        ("misspelled_optional_usage_field", "usage.cached_tokens"),
        ("unknown_top_level_field", "prompt"),
        ("cache_exceeds_input", "cache_read_tokens + cache_write_tokens"),
        ("reasoning_exceeds_output", "reasoning_tokens (11) exceeds output_tokens (10)"),
        ("total_mismatch", "total_tokens (1551)"),
        ("timestamp_1970", "outside 2015..2100"),
        ("timestamp_epoch_seconds", "not a number"),
        ("provider_cost_float", "decimal string"),
        ("provider_cost_huge_exponent", "not a representable decimal"),
        ("context_nested_100_deep", "nested more than 64 levels"),
        ("context_lone_surrogate", "context.region: holds a lone UTF-16 surrogate"),
        ("context_number_overflows_float", "context.region: number is out of range"),
        ("deeply_nested_arrays", "nested too deeply"),
        ("twenty_thousand_unknown_fields", "more errors"),
    ],
)
def test_details_say_what_is_wrong(name: str, expected: str):
    (rejection,) = decode(BY_NAME[name]).rejections

    assert expected in rejection.detail
    assert len(rejection.detail) < 4096


def test_lone_surrogates_in_rejected_ids_stay_visible_and_encodable():
    case = BY_NAME["batch_spacing_and_escapes_kept_byte_for_byte"]
    rejections = decode(case).rejections

    assert rejections[0].event_id == "café"  # the escaped id, read as JSON
    for rejection in rejections:
        for text in (rejection.detail, rejection.event_id or "", rejection.project_id or ""):
            text.encode("utf-8")


def test_an_oversized_dead_letter_keeps_a_prefix_and_says_so():
    case = BY_NAME["batch_of_1001_large_events"]
    (rejection,) = decode(case).rejections

    key, value = dead_letter_record(rejection, rejected_at=NOW, consumer_group="g")
    record = json.loads(value)

    assert record["raw_truncated"] is True and record["raw_text"] is None
    assert record["raw_size"] == len(case.value)
    assert len(base64.b64decode(record["raw_base64"])) > 600_000  # as much as fits


def test_a_large_dead_letter_drops_raw_text_before_cutting_bytes():
    case = BY_NAME["twenty_thousand_unknown_fields"]
    (rejection,) = decode(case).rejections

    _, value = dead_letter_record(rejection, rejected_at=NOW, consumer_group="g")
    record = json.loads(value)

    assert record["raw_text"] is None
    assert record["raw_truncated"] is False
    assert base64.b64decode(record["raw_base64"]) == case.value
