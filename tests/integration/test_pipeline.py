"""Broker -> worker -> ClickHouse, end to end, checked against independently computed totals.

Real Apache Kafka broker (session fixture), a real worker process, the real ClickHouse
engine (embedded chDB store per test; tests marked `both_stores` also run on a database of
the session's ClickHouse server, over HTTP). Nothing is mocked.
"""

from __future__ import annotations

import itertools
import json

import pytest

from schemas import UsageTrackingEvent
from tests.factories import make_event_dict, varied_events
from tests.integration.pipeline_harness import Pipeline, actual_report, both_stores, expected_report, wait_until_billed

pytestmark = pytest.mark.integration

def assert_reports_exact(pipeline: Pipeline, events: list[UsageTrackingEvent]) -> None:
    for group_by in ("project", "agent", "session", "model"):
        got = actual_report(pipeline.report_cli(group_by), group_by)
        want = expected_report(events, group_by)
        assert got == want, f"report --group-by {group_by} differs"


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path, store_server: str | None) -> Pipeline:
    return Pipeline.fresh(kafka_bootstrap, tmp_path, server=store_server)


@both_stores
def test_report_equals_independent_totals_and_resend_changes_nothing(pipeline: Pipeline) -> None:
    events = varied_events(3_000)
    assert len({e.project_id for e in events}) >= 3 and len({e.provider for e in events}) >= 3
    assert len({e.agent_name for e in events}) >= 3 and len({e.session_id for e in events}) >= 5

    with pipeline.worker() as worker:
        sent = pipeline.publish(events)
        worker.wait_for_messages(sent)
        assert_reports_exact(pipeline, events)

        # The same events again, as a retrying producer would send them: nothing changes.
        sent += pipeline.publish(events)
        stats = worker.wait_for_messages(sent)
        assert (stats["events_accepted"], stats["duplicates"]) == (len(events), len(events))
        assert_reports_exact(pipeline, events)

    # And after the worker stopped, report opens the store itself: same totals.
    assert_reports_exact(pipeline, events)


def bad_messages(project: str) -> list[tuple[bytes | None, bytes]]:
    key = project.encode()
    good_a = make_event_dict(project_id=project)
    good_b = make_event_dict(project_id=project)
    return [
        (key, b'{"schema_version": 1, "event_id": '),  # broken JSON
        (key, b"\xff\xfe\x00garbage"),  # not UTF-8
        (key, json.dumps(make_event_dict(project_id=project, usage={"cache_read_tokens": 99_999})).encode()),
        (key, json.dumps(make_event_dict(project_id=project, usage={"input_token": 5})).encode()),
        (key, json.dumps(make_event_dict(project_id=project, provider_cost=0.25)).encode()),
        (key, json.dumps([good_a, make_event_dict(project_id=project, usage={"output_tokens": -1}), good_b]).encode()),
        (key, json.dumps(make_event_dict(project_id="someone-else")).encode()),
        (key, b"[]"),
        (key, b"42"),
    ], [good_a, good_b]


def test_malformed_messages_are_dead_lettered_with_reasons_and_change_no_total(pipeline: Pipeline) -> None:
    events = varied_events(500, seed=2)
    raw, companions = bad_messages("proj-alpha")
    billed = events + [UsageTrackingEvent.model_validate(c) for c in companions]

    with pipeline.worker() as worker:
        sent = pipeline.publish(events) + pipeline.publish_raw(raw)
        stats = worker.wait_for_messages(sent)
        assert stats["dead_letters_total"] == 9
        assert_reports_exact(pipeline, billed)

    letters = pipeline.dead_letters(expected=9)
    assert len(letters) == 9
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons == sorted(
        [
            "invalid_json",
            "invalid_utf8",
            "invalid_event",
            "invalid_event",
            "invalid_event",
            "invalid_event",
            "project_key_mismatch",
            "empty_batch",
            "not_an_event",
        ]
    )
    by_detail = " | ".join(letter["detail"] for letter in letters)
    assert "usage.input_token" in by_detail  # the misspelled field is named
    assert "cache_read_tokens + cache_write_tokens" in by_detail
    batch_letter = next(l for l in letters if l["source"]["batch_index"] is not None)
    assert batch_letter["source"]["batch_index"] == 1
    assert batch_letter["source"]["topic"] == pipeline.events_topic
    utf8_letter = next(l for l in letters if l["reason"] == "invalid_utf8")
    import base64

    assert base64.b64decode(utf8_letter["raw_base64"]) == b"\xff\xfe\x00garbage"


@both_stores
def test_failing_clickhouse_writes_lose_nothing_and_double_nothing(pipeline: Pipeline) -> None:
    events = varied_events(2_000, seed=3)
    # Three inserts fail outright, then two succeed on the server but report failure.
    with pipeline.worker(USAGE_SINK_FAULT_PLAN="fail_inserts=3,fail_after_insert=2") as worker:
        sent = pipeline.publish(events)
        stats = worker.wait_for_messages(sent)
        assert stats["sink_retries"] >= 5
        assert_reports_exact(pipeline, events)


@both_stores
def test_worker_killed_mid_stream_then_restarted_bills_exactly(pipeline: Pipeline) -> None:
    events = varied_events(6_000, seed=4)
    chunks = [events[i : i + 1_000] for i in range(0, len(events), 1_000)]
    sent = 0
    worker = pipeline.worker().start()
    try:
        for chunk in itertools.islice(chunks, 3):
            sent += pipeline.publish(chunk)
        worker.wait_for_messages(1)
        worker.kill()  # SIGKILL: whatever was not committed is redelivered
        for chunk in itertools.islice(chunks, 3, None):
            sent += pipeline.publish(chunk)
    finally:
        worker.kill()
    with pipeline.worker() as restarted:
        # The restarted worker sees at least the uncommitted tail; wait until all is billed.
        wait_until_billed(pipeline, restarted, len(events))
        assert_reports_exact(pipeline, events)
