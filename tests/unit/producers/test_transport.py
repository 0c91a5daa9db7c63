"""`KafkaTransport` with no broker to talk to: emits stay instant, nothing is lost, losses are loud."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest

from producers.spool import EventSpool
from producers.transport import KafkaTransport, NullTransport
from tests.factories import make_event

pytest.importorskip("aiokafka")

CLOSED_PORT = "127.0.0.1:9"  # discard port: nothing listens, connections are refused at once


def unreachable(tmp_path: Path, **options) -> KafkaTransport:
    return KafkaTransport(CLOSED_PORT, "t.events", EventSpool(tmp_path / "spool", **options.pop("spool", {})),
                          stall_seconds=0.5, **options)


def spooled_events(spool: EventSpool) -> list:
    spool.seal()
    claimed = []
    while (segment := spool.claim()) is not None:
        claimed.append(segment)
    events = [event for segment in claimed for event in spool.read(segment).events]
    for segment in claimed:
        spool.release(segment)
    return events


def test_emits_return_at_once_and_land_in_the_spool_when_kafka_is_unreachable(tmp_path: Path) -> None:
    transport = unreachable(tmp_path)
    events = [make_event() for _ in range(1000)]

    started = time.perf_counter()
    for event in events:
        transport.emit(event)
    elapsed = time.perf_counter() - started

    assert elapsed < 0.5
    assert transport.flush(10)
    stats = transport.stats()
    assert (stats.spooled, stats.delivered, stats.dropped, stats.broker_available) == (1000, 0, 0, False)
    assert "cannot reach Kafka" in stats.last_error
    transport.close()
    assert {event.event_id for event in spooled_events(transport.spool)} == {event.event_id for event in events}


def test_a_full_queue_spills_to_the_spool_on_the_callers_thread(tmp_path: Path) -> None:
    transport = unreachable(tmp_path, queue_max_events=10, linger_seconds=5)
    transport._thread = object()  # keep the sender from draining: only the caller's path runs

    for _ in range(25):
        transport.emit(make_event())

    stats = transport.stats()
    assert (stats.queued, stats.queue_overflows, stats.spooled) == (10, 15, 15)
    transport._thread = None
    transport.close(timeout=3)
    assert len(spooled_events(transport.spool)) == 25


def test_a_full_spool_drops_loudly_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    one_event = len(make_event().model_dump_json()) + 1
    transport = unreachable(tmp_path, spool={"max_bytes": one_event * 3 + 10})

    with caplog.at_level(logging.ERROR, logger="producers.transport"):
        for _ in range(10):
            transport.emit(make_event())
        transport.flush(10)

        stats = transport.stats()
        transport.close()

    assert (stats.spooled, stats.dropped) == (3, 7)
    # The sender may drop them in one batch or several; a loss the log interval holds back
    # is logged at close at the latest: every loss is logged, and they add up.
    lost = [int(n) for n in re.findall(r"LOST (\d+) usage events", caplog.text)]
    assert sum(lost) == 7 and "USAGE_TRACKING_SPOOL_MAX_BYTES" in caplog.text


def test_close_settles_everything_queued_in_the_spool(tmp_path: Path) -> None:
    transport = unreachable(tmp_path)
    events = [make_event() for _ in range(50)]
    for event in events:
        transport.emit(event)

    started = time.perf_counter()
    transport.close(timeout=3)

    assert time.perf_counter() - started < 4
    assert len(spooled_events(transport.spool)) == 50
    transport.emit(make_event())  # after close: straight to the spool, never lost
    assert len(spooled_events(transport.spool)) == 51


def test_the_null_transport_publishes_nothing_and_says_why() -> None:
    transport = NullTransport(disabled_by_kill_switch=True)
    transport.emit(make_event())

    assert transport.flush() and transport.stats().publishing_disabled


def test_drafts_of_tracked_calls_are_encoded_off_the_callers_thread_and_spooled_valid(tmp_path: Path) -> None:
    from producers.call import CallRecord, TrackingDefaults, draft_event
    from producers.usage_mapping import MappedUsage, build_usage

    def drafted(number: int):
        record = CallRecord(provider="openai", model="gpt-4o", operation=f"op-{number}")
        record.apply_usage(MappedUsage(build_usage(input_tokens=number, output_tokens=1)))
        return draft_event(record, TrackingDefaults(source="svc", project_id="proj"))

    transport = unreachable(tmp_path, queue_max_events=30)
    drafts = [drafted(n) for n in range(50)]  # 20 past the queue bound: spooled by the caller itself
    for draft in drafts:
        transport.emit(draft)
    transport.close(timeout=3)

    spooled = spooled_events(transport.spool)
    assert sorted(e.event_id for e in spooled) == sorted(d.event_id for d in drafts)
    assert {e.usage.input_tokens for e in spooled} == set(range(50))
