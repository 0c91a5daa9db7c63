"""The sender's encoding stage, and what is (not) done on the caller's thread."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from producers import tracking
from producers.call import CallRecord, TrackingDefaults, draft_event
from producers.collectors import listening
from producers.llm_call import track_llm_call
from producers.response import UsageCollector
from producers.sender_encoding import CHECK_EVERY, CHUNK_EVENTS, EncodingStage
from producers.transport import NullTransport
from producers.usage_mapping import MappedUsage, build_usage
from producers.wire import EventDraft
from schemas import UsageTrackingEvent
from tests.factories import make_event
from tests.unit.producers.conftest import PROJECT, SOURCE

DEFAULTS = TrackingDefaults(source="svc", project_id="proj")


def drafted(operation: str) -> EventDraft:
    record = CallRecord(provider="openai", model="gpt-4o", operation=operation)
    record.apply_usage(MappedUsage(build_usage(input_tokens=10, output_tokens=5)))
    return draft_event(record, DEFAULTS)


def test_drafts_and_events_come_out_encoded_in_their_order() -> None:
    items: list[EventDraft | UsageTrackingEvent] = [drafted(f"op-{n}") for n in range(3 * CHUNK_EVENTS)]
    items.insert(5, make_event(event_id="from-emit"))
    items.append(make_event(event_id="last"))

    encoded = EncodingStage().encode(items)

    assert [e.event_id for e in encoded] == [item.event_id for item in items]
    assert [json.loads(e.json)["event_id"] for e in encoded] == [item.event_id for item in items]
    for event in encoded:
        UsageTrackingEvent.model_validate_json(event.json)


def test_long_work_is_cut_into_slices_that_hand_the_gil_over() -> None:
    stage = EncodingStage(slice_seconds=0.0)
    handovers = []
    stage.hand_over = lambda: handovers.append(1)  # type: ignore[method-assign]

    stage.encode([drafted("x") for _ in range(4 * CHUNK_EVENTS)])

    assert len(handovers) == 4  # after every chunk, since each took longer than the (zero) slice


def test_a_draft_that_fails_the_spot_check_is_still_published_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    good = [drafted("ok") for _ in range(CHUNK_EVENTS - 1)]
    bad = drafted("bad")._replace(project_id="")  # what a bug in the SDK could produce
    stage = EncodingStage(check_every=1)

    with caplog.at_level(logging.ERROR, logger="producers.transport"):
        encoded = stage.encode([*good, bad])

    assert [e.event_id for e in encoded] == [d.event_id for d in [*good, bad]]
    assert stage.invalid == 1
    assert bad.event_id in caplog.text and "dead-letters" in caplog.text


def test_by_default_one_draft_in_check_every_is_spot_checked() -> None:
    bad = drafted("bad")._replace(project_id="")
    stage = EncodingStage()

    stage.encode([bad] * (3 * CHECK_EVERY))

    assert stage.invalid == 3


class DraftTransport(NullTransport):
    """Our transports' contract: takes drafts; records what it got."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[object] = []

    def emit(self, event: object) -> None:  # type: ignore[override]
        self.received.append(event)


def built_events(monkeypatch: pytest.MonkeyPatch) -> list[EventDraft]:
    built: list[EventDraft] = []
    real = tracking.materialize

    def counting(draft: EventDraft) -> UsageTrackingEvent:
        built.append(draft)
        return real(draft)

    monkeypatch.setattr(tracking, "materialize", counting)
    return built


def tracked_call() -> None:
    with track_llm_call("op", provider="openai", model="gpt-4o") as call:
        call.set_usage(input_tokens=3, output_tokens=2)


def test_without_handler_or_listener_no_event_object_is_built_on_the_callers_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = DraftTransport()
    tracking.configure_usage_tracking(destination=transport, source=SOURCE, project_id=PROJECT)
    built = built_events(monkeypatch)

    tracked_call()

    assert built == []
    assert len(transport.received) == 1 and isinstance(transport.received[0], EventDraft)


def test_a_handler_or_listener_gets_an_event_built_once_and_the_transport_gets_that_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = DraftTransport()
    seen: list[UsageTrackingEvent] = []
    tracking.configure_usage_tracking(seen.append, destination=transport, source=SOURCE, project_id=PROJECT)
    built = built_events(monkeypatch)

    with listening(UsageCollector()) as collector:
        tracked_call()

    assert len(built) == 1
    assert seen == list(collector.events) == transport.received  # one object, everywhere


def test_a_transport_of_the_callers_own_still_gets_events(tmp_path: Path) -> None:
    class OwnTransport(NullTransport):
        accepts_drafts = False

        def __init__(self) -> None:
            super().__init__()
            self.received: list[object] = []

        def emit(self, event: object) -> None:  # type: ignore[override]
            self.received.append(event)

    own = OwnTransport()
    tracking.configure_usage_tracking(destination=own, source=SOURCE, project_id=PROJECT)

    tracked_call()

    assert len(own.received) == 1 and isinstance(own.received[0], UsageTrackingEvent)


def test_spooled_lines_replay_as_written_and_a_torn_line_is_skipped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stage = EncodingStage()
    written = stage.encode([drafted(f"op-{n}") for n in range(CHUNK_EVENTS + 3)])
    lines = [event.json for event in written]
    lines.insert(4, lines[4][:37])  # a crashed writer's torn line, in the middle of a chunk

    with caplog.at_level(logging.ERROR, logger="producers.transport"):
        decoded, unreadable = stage.decode_lines(lines, "seg-1.jsonl")

    assert unreadable == 1 and "event 5 of seg-1.jsonl" in caplog.text
    assert [(e.project_id, e.event_id, e.json) for e in decoded] == [
        (e.project_id, e.event_id, e.json) for e in written
    ]
