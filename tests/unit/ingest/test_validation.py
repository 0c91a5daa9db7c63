"""Ingest body validation: the consumer's rules, and a 4xx that names every bad field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from stream_app.ingest.validation import MAX_EVENTS_PER_REQUEST, IngestRejection, parse_ingest_body
from tests.factories import OMIT, make_event_dict

SKEW = timedelta(minutes=5)


def parse(body: object) -> object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    # The clock is read per call: factory events are stamped now, and a suite can run for minutes.
    return parse_ingest_body(raw, now=datetime.now(UTC), max_future_skew=SKEW)


def test_one_event_or_a_list_is_accepted() -> None:
    single = make_event_dict()
    listed = [make_event_dict(), make_event_dict(project_id="proj-b")]

    assert [event.event_id for event in parse(single)] == [single["event_id"]]
    assert [event.event_id for event in parse(listed)] == [item["event_id"] for item in listed]


def test_each_bad_field_is_named_with_its_index_and_path() -> None:
    body = [
        make_event_dict(),
        make_event_dict(usage={"input_tokens": -5}, model=OMIT),
        make_event_dict(tool_calls=[{"name": ""}]),
        "not an event",
    ]

    rejection = parse(body)

    assert isinstance(rejection, IngestRejection) and rejection.status == 422
    assert rejection.error == "3 of 4 events are invalid; nothing was accepted"
    problems = {(p.index, p.field) for p in rejection.problems}
    assert problems == {(1, "model"), (1, "usage.input_tokens"), (2, "tool_calls[0].name"), (3, "")}


def test_the_cache_rule_and_misspelled_fields_are_refused_like_the_consumer_does() -> None:
    typo = parse(make_event_dict(usage={"input_token": 3}))
    cache = parse([make_event_dict(usage={"cache_read_tokens": 5000})])

    assert typo.problems[0].field == "usage.input_token"  # a typo is never a silent zero
    assert typo.body()["problems"][0]["index"] is None  # a single object has no index
    assert (cache.problems[0].index, cache.problems[0].field) == (0, "usage")
    assert "must include cached tokens" in cache.problems[0].message


def test_timestamps_too_far_in_the_future_are_refused_up_front() -> None:
    rejection = parse(make_event_dict(timestamp=datetime.now(UTC) + timedelta(hours=2)))

    assert rejection.status == 422 and rejection.problems[0].field == "timestamp"


def test_not_json_too_many_and_empty_bodies() -> None:
    assert parse(b"{oops").status == 400
    assert parse(b"  ").status == 400
    assert parse(b"[NaN]").status == 400
    assert parse([]).status == 422
    assert parse(42).status == 422
    too_many = parse([make_event_dict() for _ in range(MAX_EVENTS_PER_REQUEST + 1)])
    assert too_many.status == 413 and "at most 1000" in too_many.error
