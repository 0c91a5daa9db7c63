"""Reading dead letters back: parse, size bounds, summary by reason, export lines, replay plans."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from stream_app.core.dead_letter import (
    MAX_DEAD_LETTER_BYTES,
    MAX_DETAIL_CHARS,
    DeadLetter,
    DeadLetterFormatError,
    dead_letter_record,
    describe_source,
    export_lines,
    parse_dead_letter,
)
from stream_app.core.dead_letter_replay import plan_file_replay, plan_replay
from stream_app.core.dead_letter_summary import summarize_by_reason
from stream_app.core.decode import MessageOrigin, Rejection, decode_message
from tests.factories import OMIT, make_event_dict

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
SKEW = timedelta(seconds=300)
PROJECT = "proj-acme"
TOPIC = "llm.usage.events"


def event_dict(**overrides) -> dict:
    overrides.setdefault("timestamp", NOW - timedelta(seconds=30))
    overrides.setdefault("project_id", PROJECT)
    return make_event_dict(**overrides)


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def letters_of(value: bytes | None, *, key: bytes | None = PROJECT.encode(), offset: int = 10, now: datetime = NOW, at: datetime = NOW) -> list[DeadLetter]:
    """Decode a message as the worker does at `now`, and read its dead letters back."""
    result = decode_message(value, MessageOrigin(TOPIC, 1, offset, key), now=now, max_future_skew=SKEW)
    out = []
    for i, rejection in enumerate(result.rejections):
        k, v = dead_letter_record(rejection, rejected_at=at, consumer_group="usage-pipeline")
        out.append(parse_dead_letter(k, v, partition=0, offset=offset * 100 + i))
    return out


# --- the record: bounded, and read back as written ------------------------------------------


def test_parse_reads_back_what_the_worker_wrote():
    bad = event_dict(usage={"input_token": 5})
    (letter,) = letters_of(compact([event_dict(), bad]), offset=77)

    assert letter.reason == "invalid_event"
    assert "usage.input_token" in letter.detail
    assert (letter.source.topic, letter.source.partition, letter.source.offset, letter.batch_index) == (TOPIC, 1, 77, 1)
    assert letter.source.key == PROJECT.encode()
    assert letter.raw == compact(bad)
    assert letter.raw_text == compact(bad).decode()
    assert (letter.raw_size, letter.raw_truncated) == (len(compact(bad)), False)
    assert (letter.event_id, letter.project_id) == (bad["event_id"], PROJECT)
    assert letter.rejected_at == NOW
    assert (letter.dlq_partition, letter.dlq_offset) == (0, 7700)
    assert describe_source(letter) == f"{TOPIC}[1]@77#1"


def test_records_written_before_raw_size_existed_read_as_complete():
    old = {
        "dead_letter_version": 1,
        "reason": "invalid_json",
        "detail": "x",
        "event_id": None,
        "project_id": None,
        "source": {"topic": TOPIC, "partition": 0, "offset": 3, "batch_index": None, "key": None},
        "raw_base64": base64.b64encode(b"{").decode(),
        "raw_text": "{",
        "rejected_at": NOW.isoformat(),
        "consumer_group": "g",
    }

    letter = parse_dead_letter(None, json.dumps(old).encode())

    assert (letter.raw, letter.raw_size, letter.raw_truncated, letter.source.key) == (b"{", 1, False, None)


def test_a_rejected_at_without_offset_is_read_as_utc_and_summarised_with_the_others():
    (letter,) = letters_of(b"{")
    record = letter.as_dict()
    record.update(dead_letter_version=1, rejected_at="2026-11-22T09:00:00")
    bare = parse_dead_letter(None, json.dumps(record).encode())

    (summary,) = summarize_by_reason([letter, bare])

    assert bare.rejected_at == datetime(2026, 11, 22, 9, tzinfo=UTC)
    assert (summary.first_seen, summary.last_seen) == (bare.rejected_at, NOW)


@pytest.mark.parametrize(
    "value",
    [b"", b"not json", b"[]", b'{"dead_letter_version": 2}', b'{"dead_letter_version": 1, "reason": "x"}',
     b'{"dead_letter_version": 1, "reason": "x", "source": {}, "raw_base64": "!!"}',
     b'{"dead_letter_version": 1, "source": {}, "raw_base64": ""}'],
)
def test_records_that_are_not_dead_letters_are_refused(value):
    with pytest.raises(DeadLetterFormatError):
        parse_dead_letter(None, value)


def test_a_long_detail_is_cut():
    rejection = Rejection("invalid_event", "d" * 50_000, MessageOrigin(TOPIC, 0, 1, b"k"), None, b"{}")

    _, value = dead_letter_record(rejection, rejected_at=NOW, consumer_group="g")

    assert len(json.loads(value)["detail"]) == MAX_DETAIL_CHARS


@pytest.mark.parametrize("size", [10, 400_000, 700_000, 3_000_000])
def test_every_record_fits_in_a_kafka_message(size):
    raw = b"\x01" * size  # control bytes: the worst case for JSON escaping of raw_text
    rejection = Rejection("invalid_json", "x", MessageOrigin(TOPIC, 0, 1, b"k" * 2000), None, raw)

    key, value = dead_letter_record(rejection, rejected_at=NOW, consumer_group="g")
    letter = parse_dead_letter(key, value)

    assert len(key) + len(value) <= MAX_DEAD_LETTER_BYTES
    assert raw.startswith(letter.raw) and letter.raw_size == size
    assert letter.raw_truncated == (len(letter.raw) < size)
    assert key == b""  # a key longer than any project_id is not reused


def test_a_truncated_message_keeps_its_original_size():
    rejection = Rejection("message_too_large", "big", MessageOrigin(TOPIC, 0, 1, b"k"), None, b"[" * 100, raw_size=5_000_000)

    _, value = dead_letter_record(rejection, rejected_at=NOW, consumer_group="g")

    assert json.loads(value)["raw_size"] == 5_000_000
    assert json.loads(value)["raw_truncated"] is True


# --- summary -----------------------------------------------------------------------------------


def test_summary_counts_first_last_and_example_per_reason():
    early, late = NOW - timedelta(hours=2), NOW
    letters = (
        letters_of(compact(event_dict(usage={"output_tokens": -1})), offset=1, at=late)
        + letters_of(b"{", offset=2, at=early)
        + letters_of(compact(event_dict(method="chat")), offset=3, at=early)
        + letters_of(compact(event_dict(method="chat")), offset=3, at=late)  # redelivered: dead-lettered again
    )

    summaries = {s.reason: s for s in summarize_by_reason(letters)}

    invalid = summaries["invalid_event"]
    assert (invalid.count, invalid.distinct) == (3, 2)
    assert (invalid.first_seen, invalid.last_seen) == (early, late)
    assert "usage.output_tokens" in invalid.example_detail
    assert (summaries["invalid_json"].count, summaries["invalid_json"].distinct) == (1, 1)
    assert [s.reason for s in summarize_by_reason(letters)] == ["invalid_event", "invalid_json"]


# --- export ------------------------------------------------------------------------------------


def test_export_gives_the_event_as_it_arrived():
    raw = compact(event_dict(usage={"input_token": 5}))
    (letter,) = letters_of(raw)

    assert export_lines(letter) == [raw.decode()]


def test_export_of_a_rejected_batch_gives_one_line_per_element():
    events = [{"schema_version": 1, "event_id": f"e-{i}"} for i in range(1001)]
    (letter,) = letters_of(compact(events))
    assert letter.reason == "batch_too_large"

    lines = export_lines(letter)

    assert [json.loads(line)["event_id"] for line in lines] == [e["event_id"] for e in events]


def test_export_makes_a_pretty_printed_event_one_line():
    raw = json.dumps(event_dict(method="chat"), indent=2).encode()
    (letter,) = letters_of(raw)

    (line,) = export_lines(letter)

    assert "\n" not in line and json.loads(line) == json.loads(raw)


def test_export_keeps_broken_json_on_one_line_for_a_person_to_fix():
    (letter,) = letters_of(b'{"schema_version": 1,\n "event_id": ')

    assert export_lines(letter) == ['{"schema_version": 1,  "event_id": ']


@pytest.mark.parametrize(
    "value, why",
    [(b"\xff\xfe{}", "not UTF-8"), (b"[" + b" " * (4 * 1024 * 1024) + b"]", "only the first")],
)
def test_export_refuses_what_nobody_could_fix(value, why):
    (letter,) = letters_of(value)

    with pytest.raises(DeadLetterFormatError, match=why):
        export_lines(letter)


# --- replay of dead letters ----------------------------------------------------------------


def test_a_future_event_whose_time_has_come_is_ready_byte_for_byte():
    future = event_dict(timestamp=NOW + timedelta(hours=1))
    raw = compact(future)
    (letter,) = letters_of(raw)
    assert letter.reason == "future_timestamp"

    still_early = plan_replay([letter], now=NOW, max_future_skew=SKEW)
    later = plan_replay([letter], now=NOW + timedelta(hours=1), max_future_skew=SKEW)

    assert still_early.ready == [] and [s.reason for s in still_early.skipped] == ["future_timestamp"]
    (message,) = later.ready
    assert (message.key, message.value) == (PROJECT.encode(), raw)
    assert [e.event_id for e in message.events] == [future["event_id"]]
    assert later.skipped == []


def test_a_future_element_of_a_batch_is_replayed_alone():
    future = event_dict(timestamp=NOW + timedelta(hours=1))
    (letter,) = letters_of(compact([event_dict(), future, event_dict()]))

    (message,) = plan_replay([letter], now=NOW + timedelta(hours=2), max_future_skew=SKEW).ready

    assert message.value == compact(future)
    assert message.key == PROJECT.encode()


def test_bad_letters_stay_skipped_with_the_reason_they_fail_now():
    letters = letters_of(compact(event_dict(usage={"input_token": 5}))) + letters_of(b"{", offset=11)

    plan = plan_replay(letters, now=NOW + timedelta(days=1), max_future_skew=SKEW)

    assert plan.ready == []
    assert [(s.origin, s.reason) for s in plan.skipped] == [(f"{TOPIC}[1]@10", "invalid_event"), (f"{TOPIC}[1]@11", "invalid_json")]


def test_replay_keeps_the_original_key_check():
    mismatched = event_dict(project_id="proj-other", timestamp=NOW + timedelta(hours=1))
    (letter,) = letters_of(compact(mismatched))

    plan = plan_replay([letter], now=NOW + timedelta(hours=2), max_future_skew=SKEW)

    assert plan.ready == [] and [s.reason for s in plan.skipped] == ["project_key_mismatch"]


def test_a_keyless_letter_is_replayed_keyed_by_its_project():
    future = event_dict(timestamp=NOW + timedelta(hours=1))
    (letter,) = letters_of(compact(future), key=None)

    (message,) = plan_replay([letter], now=NOW + timedelta(hours=2), max_future_skew=SKEW).ready

    assert message.key == PROJECT.encode()


def test_each_input_is_planned_once_and_reason_selects():
    future = compact(event_dict(timestamp=NOW + timedelta(hours=1)))
    letters = letters_of(future, offset=5) + letters_of(future, offset=5) + letters_of(b"{", offset=6)

    plan = plan_replay(letters, now=NOW + timedelta(hours=2), max_future_skew=SKEW, reason="future_timestamp")

    assert len(plan.ready) == 1 and plan.repeats == 1 and plan.skipped == []


def test_a_truncated_letter_is_never_replayed():
    (letter,) = letters_of(compact([event_dict() for _ in range(1001)]))
    assert letter.raw_truncated

    plan = plan_replay([letter], now=NOW, max_future_skew=SKEW)

    assert plan.ready == [] and "prefix" in plan.skipped[0].detail


# --- replay of a corrected file ----------------------------------------------------------------


def test_file_lines_are_validated_with_the_consumers_rules():
    good = event_dict()
    lines = [
        b"\xef\xbb\xbf" + compact(good) + b"\r\n",
        b"\n",
        compact(event_dict(usage={"input_tokens": OMIT, "input_token": 5})) + b"\n",
        compact(event_dict(timestamp=NOW + timedelta(days=1))) + b"\n",
        b"\xff\n",
        compact([event_dict()]) + b"\n",
        b"{\n",
    ]

    plan = plan_file_replay(lines, now=NOW, max_future_skew=SKEW)

    (message,) = plan.ready
    assert (message.origin, message.key, message.value) == ("line 1", PROJECT.encode(), compact(good))
    assert [(s.origin, s.reason) for s in plan.skipped] == [
        ("line 3", "invalid_event"),
        ("line 4", "future_timestamp"),
        ("line 5", "invalid_utf8"),
        ("line 6", "not_an_event"),
        ("line 7", "invalid_json"),
    ]
    assert "usage.input_token" in plan.skipped[0].detail


def test_a_file_line_for_another_project_is_keyed_by_its_own_project():
    plan = plan_file_replay([compact(event_dict(project_id="proj-b"))], now=NOW, max_future_skew=SKEW)

    assert plan.ready[0].key == b"proj-b"
