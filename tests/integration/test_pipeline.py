"""Broker -> worker -> ClickHouse, end to end, checked against independently computed totals.

Real Apache Kafka broker (session fixture), a real worker process, the real ClickHouse
engine (embedded chDB store per test). Nothing is mocked.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from schemas import UsageTrackingEvent
from tests.factories import make_event, make_event_dict
from tests.integration.pipeline_harness import Pipeline, actual_report, expected_report

pytestmark = pytest.mark.integration

PROJECTS = ("proj-alpha", "proj-beta", "proj-gamma")
AGENTS = ("planner", "coder", "reviewer", "summarizer")
MODELS = (
    ("openai", "gpt-4o", False, False),
    ("openai", "o4-mini", True, False),
    ("anthropic", "claude-sonnet-4-5", True, True),
    ("anthropic", "claude-haiku-4-5", False, True),
    ("google", "gemini-2.5-flash", True, False),
    ("google", "gemini-2.5-pro", True, False),
    ("openai", "ft:unknown-to-the-catalog", False, False),
)


def known_events(count: int, seed: int = 1) -> list[UsageTrackingEvent]:
    """Events with varied usage over 3 projects, 4 agents, 8 sessions, 3 providers."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events = []
    for i in range(count):
        provider, model, reasons, writes_cache = MODELS[i % len(MODELS)]
        input_tokens = rng.randint(1, 50_000)
        cache_read = rng.randint(0, input_tokens // 2)
        cache_write = rng.randint(0, (input_tokens - cache_read) // 2) if writes_cache else 0
        output_tokens = rng.randint(0, 5_000)
        events.append(
            make_event(
                project_id=PROJECTS[i % 3],
                agent_name=AGENTS[i % 4],
                session_id=None if i % 11 == 0 else f"sess-{i % 8}",
                provider=provider,
                model=model,
                timestamp=now - timedelta(seconds=rng.uniform(0, 180)),
                usage={
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "cache_read_tokens": cache_read,
                    "cache_write_tokens": cache_write,
                    "reasoning_tokens": rng.randint(0, output_tokens) if reasons else 0,
                },
            )
        )
    return events


def assert_reports_exact(pipeline: Pipeline, events: list[UsageTrackingEvent]) -> None:
    for group_by in ("project", "agent", "session", "model"):
        got = actual_report(pipeline.report_cli(group_by), group_by)
        want = expected_report(events, group_by)
        assert got == want, f"report --group-by {group_by} differs"


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path) -> Pipeline:
    return Pipeline.fresh(kafka_bootstrap, tmp_path)


def test_report_equals_independent_totals_and_resend_changes_nothing(pipeline: Pipeline) -> None:
    events = known_events(3_000)
    assert len({e.project_id for e in events}) >= 3 and len({e.provider for e in events}) >= 3
    assert len({e.agent_name for e in events}) >= 3 and len({e.session_id for e in events}) >= 5

    with pipeline.worker() as worker:
        sent = pipeline.publish(events)
        worker.wait_for_messages(sent)
        assert_reports_exact(pipeline, events)

        # The same events again, as a retrying producer would send them: nothing changes.
        sent += pipeline.publish(events)
        stats = worker.wait_for_messages(sent)
        assert stats["events_accepted"] == 2 * len(events)
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
    events = known_events(500, seed=2)
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


def test_failing_clickhouse_writes_lose_nothing_and_double_nothing(pipeline: Pipeline) -> None:
    events = known_events(2_000, seed=3)
    # Three inserts fail outright, then two succeed on the server but report failure.
    with pipeline.worker(USAGE_SINK_FAULT_PLAN="fail_inserts=3,fail_after_insert=2") as worker:
        sent = pipeline.publish(events)
        stats = worker.wait_for_messages(sent)
        assert stats["sink_retries"] >= 5
        assert_reports_exact(pipeline, events)


def test_worker_killed_mid_stream_then_restarted_bills_exactly(pipeline: Pipeline) -> None:
    events = known_events(6_000, seed=4)
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
        deadline = datetime.now(UTC) + timedelta(seconds=120)
        while datetime.now(UTC) < deadline:
            rows = restarted.report("project")
            if sum(r["events"] for r in rows) == len(events):
                break
            restarted.raise_if_exited()
            time.sleep(0.5)
        assert_reports_exact(pipeline, events)
