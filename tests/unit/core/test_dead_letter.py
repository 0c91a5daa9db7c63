"""`dead_letter_record`: what goes to the dead-letter topic for each rejection."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from stream_app.core.dead_letter import dead_letter_record
from stream_app.core.decode import MessageOrigin, Rejection

REJECTED_AT = datetime(2026, 11, 22, 12, 0, 5, tzinfo=UTC)


def record(rejection: Rejection) -> tuple[bytes, dict]:
    key, value = dead_letter_record(rejection, rejected_at=REJECTED_AT, consumer_group="usage-pipeline")
    return key, json.loads(value)


def test_dead_letter_of_a_batch_element():
    origin = MessageOrigin("llm.usage.events", 3, 41_017, b"proj-acme")
    rejection = Rejection("invalid_event", "method: bad", origin, 4, b'{"event_id":"e-9"}', "e-9", "proj-acme")

    key, value = record(rejection)

    assert key == b"proj-acme"
    assert value == {
        "dead_letter_version": 1,
        "reason": "invalid_event",
        "detail": "method: bad",
        "event_id": "e-9",
        "project_id": "proj-acme",
        "source": {"topic": "llm.usage.events", "partition": 3, "offset": 41_017, "batch_index": 4, "key": "proj-acme"},
        "raw_base64": base64.b64encode(b'{"event_id":"e-9"}').decode(),
        "raw_text": '{"event_id":"e-9"}',
        "rejected_at": "2026-11-22T12:00:05+00:00",
        "consumer_group": "usage-pipeline",
        "raw_size": 18,
        "raw_truncated": False,
    }


def test_dead_letter_keeps_bytes_that_are_not_utf8():
    raw = b'{"a":"\xff\xfe"}'
    rejection = Rejection("invalid_utf8", "not UTF-8", MessageOrigin("t", 0, 1, b"proj-acme"), None, raw)

    _, value = record(rejection)

    assert value["raw_text"] is None
    assert base64.b64decode(value["raw_base64"]) == raw
    assert value["source"]["batch_index"] is None


def test_dead_letter_without_a_message_key_is_keyed_by_project():
    rejection = Rejection("future_timestamp", "late", MessageOrigin("t", 0, 1, None), None, b"{}", "e", "proj-b")

    key, value = record(rejection)

    assert key == b"proj-b"
    assert value["source"]["key"] is None


def test_dead_letter_without_key_or_project_has_an_empty_key():
    key, _ = record(Rejection("invalid_json", "x", MessageOrigin("t", 0, 1, None), None, b"{"))

    assert key == b""


def test_dead_letter_value_is_compact_utf8():
    raw = '{"agent_name":"Zürich"}'.encode()
    _, value = dead_letter_record(
        Rejection("invalid_event", "é", MessageOrigin("t", 0, 1, b"k"), None, raw),
        rejected_at=REJECTED_AT,
        consumer_group="g",
    )

    assert "Zürich".encode() in value
    assert b'", "' not in value
