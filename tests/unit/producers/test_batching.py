"""`pack_batches`: per-project JSON-array batches within the count and byte limits."""

from __future__ import annotations

import json

import pytest

from producers import EventBatch, pack_batches
from producers.batching import encode_event
from producers.errors import EventTooLargeError, ProducerError
from schemas import UsageTrackingEvent
from tests.factories import make_event


def _events(project_id: str, count: int, **overrides) -> list[UsageTrackingEvent]:
    return [make_event(project_id=project_id, **overrides) for _ in range(count)]


def _interleave(*groups: list[UsageTrackingEvent]) -> list[UsageTrackingEvent]:
    mixed = []
    for row in zip(*groups, strict=True):
        mixed.extend(row)
    return mixed


def _decode(batch: EventBatch) -> list[UsageTrackingEvent]:
    return [UsageTrackingEvent.model_validate(item) for item in json.loads(batch.payload)]


def _ids_of(project_id: str, batches: list[EventBatch]) -> list[str]:
    return [event_id for batch in batches if batch.project_id == project_id for event_id in batch.event_ids]


def test_no_events_no_batches():
    assert pack_batches([]) == []


def test_batches_never_mix_projects():
    events = _interleave(_events("proj-a", 40), _events("proj-b", 40), _events("proj-c", 40))

    batches = pack_batches(events, max_events=7)

    for batch in batches:
        assert {event.project_id for event in _decode(batch)} == {batch.project_id}
        assert batch.key == batch.project_id.encode()
    assert {b.project_id for b in batches} == {"proj-a", "proj-b", "proj-c"}


def test_respects_max_events():
    batches = pack_batches(_events("proj-a", 2500))

    assert [len(batch.event_ids) for batch in batches] == [1000, 1000, 500]


def test_respects_max_bytes():
    events = _events("proj-a", 100)
    one_event = len(encode_event(events[0]))
    max_bytes = one_event * 10

    batches = pack_batches(events, max_bytes=max_bytes)

    assert len(batches) > 1
    assert all(len(batch.payload) <= max_bytes for batch in batches)
    assert sum(len(batch.event_ids) for batch in batches) == 100


def test_fills_batches_up_to_the_byte_limit():
    events = _events("proj-a", 3)
    sizes = [len(encode_event(event)) for event in events]
    exactly_two = 2 + sizes[0] + 1 + sizes[1]  # "[" a "," b "]"

    batches = pack_batches(events, max_bytes=exactly_two)

    assert [len(batch.event_ids) for batch in batches] == [2, 1]
    assert len(batches[0].payload) == exactly_two


def test_preserves_order_within_each_project():
    a, b = _events("proj-a", 55), _events("proj-b", 55)

    batches = pack_batches(_interleave(a, b), max_events=10)

    assert _ids_of("proj-a", batches) == [event.event_id for event in a]
    assert _ids_of("proj-b", batches) == [event.event_id for event in b]


def test_payload_round_trips_to_the_same_events():
    events = _events("proj-a", 5) + [make_event(project_id="proj-a", provider_cost="0.0123", context={"ü": "ñ"})]

    (batch,) = pack_batches(events)

    assert _decode(batch) == events
    assert batch.event_ids == tuple(event.event_id for event in events)
    assert json.loads(batch.payload) == [event.wire_dict() for event in events]


def test_payload_is_compact_utf8():
    (batch,) = pack_batches([make_event(context={"city": "Zürich"})])

    assert "Zürich".encode() in batch.payload
    assert b", " not in batch.payload and b": " not in batch.payload


def test_event_larger_than_max_bytes_is_named():
    small = make_event()
    big = make_event(context={"blob": "x" * 10_000})

    with pytest.raises(EventTooLargeError) as caught:
        pack_batches([small, big], max_bytes=5_000)

    assert caught.value.event_id == big.event_id
    assert big.event_id in str(caught.value)
    assert isinstance(caught.value, ProducerError)


@pytest.mark.parametrize("max_events", [0, 1001])
def test_rejects_event_limit_outside_spec(max_events):
    with pytest.raises(ValueError, match="max_events"):
        pack_batches([make_event()], max_events=max_events)
