"""The chunk processor's way out of a failing write: retry, stop when asked, isolate a poison message.

A fake sink stands in for ClickHouse here (pure control flow); the same paths run against
the real engine in tests/integration.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import pytest

from stream_app.core.counting import StoredCopy, content_of, fingerprint
from stream_app.core.decode import MessageOrigin
from stream_app.core.rows import EVENT_COLUMNS
from stream_app.core.windows import Source
from stream_app.sink.clickhouse import SinkStats
from stream_app.worker.chunk import ChunkProcessor, RetryPolicy, StopRequested
from stream_app.worker.metrics import WorkerMetrics
from tests.factories import make_event, make_event_dict

NOW = datetime.now(UTC)


class FakeSink:
    """Stores what it is given; refuses writes while `refuse(rows)` says so."""

    def __init__(self, refuse=lambda rows: False, answering: bool = True, events_land: bool = False) -> None:
        self.stats = SinkStats()
        self.refuse = refuse
        self.events_land = events_land  # a refusal comes after the events were written (at the cells)
        self.rebuilt_days: list = []
        self.answering = answering
        self.events: dict = {}
        self.window_parts: list[dict] = []
        self.rejections: list[tuple] = []
        self.attempts = 0

    def lookup(self, ids_by_project):
        found = {}
        for project, ids in ids_by_project.items():
            for event_id in ids:
                row = self.events.get((project, event_id))
                if row:
                    found[(project, event_id)] = StoredCopy(Source(row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]), row["batch_index"], row["fingerprint"])
        return found

    def lookup_soon(self, ids_by_project):
        done = Future()
        try:
            done.set_result(self.lookup(ids_by_project))
        except Exception as exc:  # noqa: BLE001 - handed to the caller as the real sink does
            done.set_exception(exc)
        return done

    def stored_contents(self, keys):
        return {k: self.events[k]["content"] for k in keys if k in self.events}

    def write_rows(self, rows):
        self.attempts += 1
        if self.refuse(rows):
            if self.events_land:
                for row in rows.event_rows:
                    record = dict(zip(EVENT_COLUMNS, row, strict=True))
                    self.events[(record["project_id"], record["event_id"])] = record
            raise RuntimeError("Code: 53. DB::Exception: Type mismatch")
        self.rejections.extend(rows.rejection_rows)
        self.window_parts.append(rows.window_parts)
        for row in rows.event_rows:
            record = dict(zip(EVENT_COLUMNS, row, strict=True))
            self.events[(record["project_id"], record["event_id"])] = record

    def answers(self) -> bool:
        return self.answering

    def rebuild_cells_of_days(self, days):
        self.rebuilt_days.extend(days)


def processor(sink, **retry) -> ChunkProcessor:
    policy = RetryPolicy(**{"initial_seconds": 0.001, "max_seconds": 0.004, **retry})
    return ChunkProcessor(
        sink, WorkerMetrics(), window_seconds=60, max_future_skew=timedelta(minutes=5), consumer_group="g", retry=policy
    )


def message(offset: int, *events: dict, project: str = "proj-acme") -> tuple[bytes, MessageOrigin]:
    return json.dumps(list(events)).encode(), MessageOrigin("t", 0, offset, project.encode())


def test_failed_writes_are_retried_until_they_succeed_and_counted():
    failures = iter([True, True, True])
    sink = FakeSink(refuse=lambda rows: next(failures, False), answering=False)
    worker = processor(sink)

    outcome = worker.process([message(1, make_event_dict())])

    assert outcome.attempts == 4
    assert outcome.rows.events == 1
    assert (sink.stats.write_failures, worker.metrics.sink_retries) == (3, 3)
    assert sink.stats.retrying_since is None


def test_a_chunk_is_worked_on_with_the_cyclic_collector_paused_but_not_while_it_waits_to_retry():
    import gc

    seen = {}

    class Stop(threading.Event):
        def wait(self, timeout=None):
            seen["waiting"] = gc.isenabled()
            return super().wait(0)

    failures = iter([True])

    def refuse(rows):
        seen.setdefault("writing", gc.isenabled())
        return next(failures, False)

    sink = FakeSink(refuse=refuse, answering=False)
    worker = processor(sink)
    worker.stop = Stop()
    assert gc.isenabled()

    worker.process([message(1, make_event_dict())])

    assert seen == {"writing": False, "waiting": True}
    assert gc.isenabled()  # on again once the chunk is written


def test_an_outage_is_ridden_out_without_isolating_anything():
    failures = iter([True] * 12)
    sink = FakeSink(refuse=lambda rows: next(failures, False), answering=False)

    outcome = processor(sink, refusals_before_isolating=3).process([message(1, make_event_dict())])

    assert outcome.attempts == 13 and outcome.dead_letters == []


def test_asked_to_stop_while_retrying_it_gives_up_without_writing():
    sink = FakeSink(refuse=lambda rows: True, answering=False)
    worker = processor(sink, initial_seconds=30, max_seconds=30)
    threading.Timer(0.2, worker.stop.set).start()
    started = time.monotonic()

    with pytest.raises(StopRequested):
        worker.process([message(1, make_event_dict())])

    assert time.monotonic() - started < 5
    assert sink.events == {}


def test_a_poison_message_is_dead_lettered_and_the_rest_written():
    poison = make_event_dict(event_id="poison")
    good = [make_event_dict(), make_event_dict()]
    sink = FakeSink(refuse=lambda rows: any(r[0] == "poison" for r in rows.event_rows))
    worker = processor(sink, refusals_before_isolating=2)

    outcome = worker.process([message(1, good[0]), message(2, poison, good[1]), message(3)])

    assert {k[1] for k in sink.events} == {good[0]["event_id"]}
    letters = [json.loads(v) for _k, v in outcome.dead_letters]
    assert sorted((d["reason"], d["event_id"]) for d in letters) == sorted(
        [("sink_rejected", "poison"), ("sink_rejected", good[1]["event_id"]), ("empty_batch", None)]
    )
    poisoned = [r for r in letters if r["event_id"] == "poison"][0]
    assert "Type mismatch" in poisoned["detail"]
    assert json.loads(poisoned["raw_text"])["event_id"] == "poison"
    # Only message 1 reached the window cells: the poison message's events were refused, and
    # cells are written after events, so nothing of message 2 is in any window.
    assert {offset for parts in sink.window_parts for cell in parts.values() for offset, _t in cell} == {1}
    assert worker.metrics.isolated_messages == 1


def test_a_message_whose_events_landed_but_whose_cells_are_refused_is_billed_and_its_cells_rebuilt():
    good = make_event_dict(timestamp="2026-11-22T23:59:59+02:00")
    stuck = make_event_dict(event_id="stuck")
    sink = FakeSink(refuse=lambda rows: any(k for k in rows.window_parts if k.project_id == "proj-acme") and any(
        r[0] == "stuck" for r in rows.event_rows), events_land=True)
    worker = processor(sink, refusals_before_isolating=2)

    outcome = worker.process([message(1, good), message(2, stuck)])

    # Billed (its events are stored), not dead-lettered; its days' cells rebuilt from the events.
    assert {k[1] for k in sink.events} == {good["event_id"], "stuck"}
    assert outcome.dead_letters == [] and outcome.rows.events == 2
    stuck_day = datetime.fromisoformat(stuck["timestamp"]).astimezone(UTC).date()
    assert sink.rebuilt_days == [("proj-acme", stuck_day)]
    assert worker.metrics.isolated_messages == 1


def test_a_changed_resend_of_a_stored_event_is_a_conflicting_duplicate_naming_fields():
    original = make_event_dict(event_id="e1", agent_name="triage")
    sink = FakeSink()
    worker = processor(sink)
    worker.process([message(1, original)])
    for record in sink.events.values():
        record["content"] = content_of(make_event(**{k: v for k, v in original.items() if k != "schema_version"}))
    changed = {**original, "agent_name": "billing", "session_id": "other"}

    outcome = worker.process([message(2, changed, original)])

    (letter,) = [json.loads(v) for _k, v in outcome.dead_letters]
    assert letter["reason"] == "conflicting_duplicate"
    assert letter["detail"] == "event_id already billed from t[0]@1 #0; this copy differs in: agent_name, session_id"
    assert json.loads(letter["raw_text"])["agent_name"] == "billing"
    assert (outcome.rows.events, outcome.duplicates) == (0, 1)


def test_a_stored_copy_without_fingerprint_and_equal_content_is_a_duplicate():
    original = make_event_dict(event_id="e1")
    event = make_event(**{k: v for k, v in original.items() if k != "schema_version"})
    sink = FakeSink()
    sink.events[("proj-acme", "e1")] = {
        "kafka_topic": "old", "kafka_partition": 0, "kafka_offset": 5, "batch_index": -1, "fingerprint": 0,
        "content": content_of(event),
    }
    assert fingerprint(content_of(event)) != 0

    outcome = processor(sink).process([message(9, original)])

    assert (outcome.rows.events, outcome.duplicates, outcome.dead_letters) == (0, 1, [])
