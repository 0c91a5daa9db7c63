"""`parse_jsonl`: every good line becomes an event, every bad line a readable rejection."""

from __future__ import annotations

import json

from producers import Rejection, parse_jsonl
from producers.jsonl import iter_jsonl
from tests.factories import OMIT, make_event_dict


def _line(**overrides) -> str:
    return json.dumps(make_event_dict(**overrides)) + "\n"


def test_good_lines_become_events_in_order():
    lines = [_line(project_id=f"proj-{n}") for n in range(3)]

    events, rejections = parse_jsonl(lines)

    assert rejections == []
    assert [event.project_id for event in events] == ["proj-0", "proj-1", "proj-2"]


def test_accepts_bytes_lines():
    events, rejections = parse_jsonl([_line().encode(), _line(context={"city": "Zürich"}).encode()])

    assert rejections == []
    assert events[1].context == {"city": "Zürich"}


def test_bad_json_is_rejected():
    events, rejections = parse_jsonl(['{"schema_version": 1, "event_id": \n'])

    assert events == []
    (rejection,) = rejections
    assert rejection.line_number == 1
    assert "Invalid JSON" in rejection.reason


def test_cache_tokens_above_input_are_rejected():
    _, rejections = parse_jsonl([_line(usage={"input_tokens": 100, "cache_read_tokens": 150})])

    (rejection,) = rejections
    assert rejection.reason.startswith("usage: ")
    assert "cache_read_tokens + cache_write_tokens (150) exceeds input_tokens (100)" in rejection.reason
    assert "Value error" not in rejection.reason


def test_misspelled_usage_field_is_rejected_naming_it():
    _, rejections = parse_jsonl([_line(usage={"input_tokens": OMIT, "input_token": 1200})])

    (rejection,) = rejections
    assert "usage.input_token: Extra inputs are not permitted" in rejection.reason
    assert "usage.input_tokens: Field required" in rejection.reason


def test_negative_tokens_name_the_field():
    _, rejections = parse_jsonl([_line(usage={"input_tokens": -1})])

    assert rejections[0].reason == "usage.input_tokens: Input should be greater than or equal to 0"


def test_list_positions_are_shown_as_indexes():
    _, rejections = parse_jsonl([_line(tool_calls=[{"name": "ok"}, {"name": ""}])])

    assert rejections[0].reason.startswith("tool_calls[1].name: ")


def test_blank_lines_are_skipped_but_counted():
    lines = ["\n", _line(), "   \n", "not json\n", "", _line(usage={"output_tokens": -5})]

    events, rejections = parse_jsonl(lines)

    assert len(events) == 1
    assert [rejection.line_number for rejection in rejections] == [4, 6]


def test_line_numbers_match_the_file():
    lines = [_line(), "{oops\n", _line(), _line(method="batch"), _line()]

    events, rejections = parse_jsonl(lines)

    assert len(events) == 3
    assert [r.line_number for r in rejections] == [2, 4]
    assert rejections[1].reason.startswith("method: ")


def test_byte_order_mark_on_first_line_is_ignored():
    events, rejections = parse_jsonl(["\ufeff" + _line()])

    assert (len(events), rejections) == (1, [])


def test_many_errors_are_summarised():
    _, rejections = parse_jsonl([json.dumps({f"field_{n}": n for n in range(30)})])

    assert rejections[0].reason.endswith("more errors")


def test_iter_jsonl_gives_line_numbers_of_good_events_too():
    parsed = list(iter_jsonl(["\n", _line(), "[]\n"]))

    assert [number for number, _ in parsed] == [2, 3]
    assert isinstance(parsed[1][1], Rejection)
