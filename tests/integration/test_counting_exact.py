"""SPEC.md §3 end to end: the first copy is billed, windows are exact bucket by bucket.

Real broker, real worker processes, the embedded store and the session's ClickHouse
server. Expected totals and buckets are computed here from what was sent (first copy of
each (project_id, event_id) in send order), independently of the pipeline.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from schemas import UsageTrackingEvent
from stream_app.sink.faults import CRASH_EXIT_CODE, CRASHABLE_TABLES
from tests.factories import varied_events
from tests.integration.pipeline_harness import (
    Pipeline,
    actual_report,
    both_stores,
    catalog_cost,
    expected_report,
    wait_until_billed,
)

pytestmark = pytest.mark.integration

GROUP_BYS = ("project", "agent", "session", "model")
BUCKET_KEYS = {"project": ("project_id",), "agent": ("project_id", "agent_name"), "session": ("project_id", "session_id")}


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path, store_server: str | None) -> Pipeline:
    return Pipeline.fresh(kafka_bootstrap, tmp_path, server=store_server)


def expected_buckets(events: list[UsageTrackingEvent], group_by: str, every: int) -> dict[tuple, tuple[int, int, Decimal]]:
    """(group keys..., bucket start) -> (events, input tokens, cost) over the first copy of each key."""
    billed: dict[tuple[str, str], UsageTrackingEvent] = {}
    for e in events:
        billed.setdefault((e.project_id, e.event_id), e)
    out: dict[tuple, list] = defaultdict(lambda: [0, 0, Decimal(0)])
    for e in billed.values():
        start = datetime.fromtimestamp(int(e.timestamp.timestamp()) // every * every, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        key = (*(getattr(e, k) for k in BUCKET_KEYS[group_by]), start)
        out[key][0] += 1
        out[key][1] += e.usage.input_tokens
        out[key][2] += catalog_cost(e)
    return {k: tuple(v) for k, v in out.items()}


def reported_buckets(pipeline: Pipeline, group_by: str, every: str) -> dict[tuple, tuple[int, int, Decimal]]:
    records = pipeline.report_cli(group_by, "--every", every)
    return {
        (*(r[k] for k in BUCKET_KEYS[group_by]), r["window_start"]): (r["events"], r["input_tokens"], Decimal(r["cost_usd"]))
        for r in records
    }


def assert_exact(pipeline: Pipeline, sent: list[UsageTrackingEvent], every: str = "1m", every_seconds: int = 60) -> None:
    for group_by in GROUP_BYS:
        assert actual_report(pipeline.report_cli(group_by), group_by) == expected_report(sent, group_by), group_by
    for group_by in BUCKET_KEYS:
        assert reported_buckets(pipeline, group_by, every) == expected_buckets(sent, group_by, every_seconds), group_by


def changed_copies(events: list[UsageTrackingEvent]) -> list[tuple[UsageTrackingEvent, str]]:
    """Re-sends that differ from the billed copy, with the field each changes."""
    out = []
    for i, e in enumerate(events):
        kind = i % 4
        if kind == 0:
            out.append((e.model_copy(update={"timestamp": e.timestamp - timedelta(minutes=7)}), "timestamp"))
        elif kind == 1:
            out.append((e.model_copy(update={"agent_name": e.agent_name + "-x"}), "agent_name"))
        elif kind == 2:
            out.append((e.model_copy(update={"session_id": "moved-session"}), "session_id"))
        else:
            usage = e.usage.model_copy(update={"input_tokens": e.usage.input_tokens + 1, "total_tokens": None})
            out.append((e.model_copy(update={"usage": usage}), "usage.input_tokens"))
    return out


@both_stores
def test_changed_resends_are_dead_lettered_and_change_no_total_and_no_bucket(pipeline: Pipeline) -> None:
    now = datetime.now(UTC)
    events = varied_events(1_600, seed=71, now=now, spread_seconds=600)
    changed = changed_copies(events[:200])
    identical = events[200:300]

    with pipeline.worker() as worker:
        sent = pipeline.publish(events)
        sent += pipeline.publish([c for c, _field in changed] + identical)
        stats = worker.wait_for_messages(sent)
        wait_until_billed(pipeline, worker, len(events))
        assert stats["duplicates"] == len(identical)
        assert stats["dead_letters"] == {"conflicting_duplicate": len(changed)}
        assert_exact(pipeline, events)

    letters = pipeline.dead_letters(len(changed))
    assert len(letters) == len(changed)
    fields = {(letter["project_id"], letter["event_id"]): letter["detail"] for letter in letters}
    for copy, field in changed:
        detail = fields[(copy.project_id, copy.event_id)]
        assert detail.endswith(f"this copy differs in: {field}"), detail
    assert {letter["reason"] for letter in letters} == {"conflicting_duplicate"}


@both_stores
def test_a_month_of_backfill_in_large_chunks_is_billed_exactly(pipeline: Pipeline) -> None:
    # 30 days of events, published before the worker starts so that its first chunks are
    # whole 1,000-event messages spanning the month.
    now = datetime.now(UTC)
    backfill = varied_events(6_000, seed=72, now=now - timedelta(hours=1), spread_seconds=30 * 86_400)
    sent = pipeline.publish(backfill)

    with pipeline.worker() as worker:
        worker.wait_for_messages(sent, timeout=300)
        wait_until_billed(pipeline, worker, len(backfill))
        assert worker.stats()["sink_retries"] == 0
        assert_exact(pipeline, backfill, every="1d", every_seconds=86_400)
        # And the month replayed (a spool flushed twice, a DLQ replay): nothing changes.
        sent += pipeline.publish(backfill)
        assert worker.wait_for_messages(sent, timeout=300)["duplicates"] == len(backfill)
        assert_exact(pipeline, backfill, every="1d", every_seconds=86_400)


def run_until_injected_crash(pipeline: Pipeline, fault_plan: str) -> None:
    """A worker with `fault_plan` (USAGE_SINK_FAULT_PLAN) started and awaited until it crashes as planned."""
    crashing = pipeline.worker(USAGE_SINK_FAULT_PLAN=fault_plan).start()
    try:
        deadline = time.monotonic() + 120
        while crashing.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert crashing.process.returncode == CRASH_EXIT_CODE, crashing.log_tail()
    finally:
        crashing.kill()


def crash_cases() -> list:
    cases = [pytest.param(table, "chdb", id=f"chdb-crash-after-{table}") for table in CRASHABLE_TABLES]
    return cases + [pytest.param("usage_events", "server", id="server-crash-after-usage_events")]


@pytest.mark.parametrize(("table", "store_kind"), crash_cases(), indirect=["store_kind"])
def test_a_crash_between_any_two_writes_neither_loses_nor_doubles(pipeline: Pipeline, table: str) -> None:
    now = datetime.now(UTC)
    events = varied_events(1_500, seed=73, now=now, spread_seconds=300)
    changed = [c for c, _f in changed_copies(events[:40])]
    # A malformed message first, so that even the first chunk writes a dead letter.
    sent = pipeline.publish_raw([(b"proj-a", b"{not json")])
    sent += pipeline.publish(events + changed + events[:100])

    run_until_injected_crash(pipeline, f"crash_after={table}")

    with pipeline.worker() as worker:
        stats = worker.wait_for_messages(sent, timeout=180)
        wait_until_billed(pipeline, worker, len(events))
        assert stats["dead_letters"].get("conflicting_duplicate") == len(changed)
        assert_exact(pipeline, events)


@pytest.mark.parametrize("store_kind", ["server"], indirect=True)
def test_two_workers_racing_over_the_same_messages_bill_once(pipeline: Pipeline) -> None:
    # The worst rebalance race: two workers (two consumer groups) process every message of
    # the topic at the same time, into the same store. Each message's rows land on the same
    # keys whoever writes them, and the first copy of each event stays the billed one.
    now = datetime.now(UTC)
    events = varied_events(4_000, seed=74, now=now, spread_seconds=300)
    changed = [c for c, _f in changed_copies(events[:60])]

    with pipeline.worker() as first, pipeline.worker(USAGE_CONSUMER_GROUP=pipeline.group + "-rival") as second:
        sent = pipeline.publish(events[:2_000])
        sent += pipeline.publish(events[2_000:] + changed + events[:500])
        for worker in (first, second):
            worker.wait_for_messages(sent, timeout=240)
        wait_until_billed(pipeline, first, len(events))
        assert_exact(pipeline, events)
        conflicts = [w.stats()["dead_letters"].get("conflicting_duplicate", 0) for w in (first, second)]
        assert conflicts == [len(changed), len(changed)]


def _stored_per_message(pipeline: Pipeline) -> dict[tuple[int, int], int]:
    """Billed events stored per source message (the embedded store, opened while no worker has it)."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=pipeline.store_url)
    try:
        rows = client.query(
            f"SELECT kafka_partition, kafka_offset, count() FROM `{pipeline.database}`.usage_events FINAL "
            "GROUP BY kafka_partition, kafka_offset"
        ).result_rows
    finally:
        client.close()
    return {(int(p), int(o)): int(n) for p, o, n in rows}


def test_a_crash_between_the_slices_of_a_chunks_events_stores_whole_messages_and_recovers_exactly(
    pipeline: Pipeline,
) -> None:
    # A chunk's events are inserted in two slices (stream_app/sink/sliced_insert.py); the
    # injected crash comes right after the first. What it leaves must be whole messages
    # (cells can be rebuilt from stored events only if they are), and the restart exact.
    now = datetime.now(UTC)
    events = varied_events(8_000, seed=76, now=now, spread_seconds=300)
    sent = pipeline.publish(events)

    run_until_injected_crash(pipeline, "crash_after=usage_events")
    partial = _stored_per_message(pipeline)
    assert 0 < sum(partial.values()) < len(events), "the crash did not fall between two slices"

    with pipeline.worker() as worker:
        worker.wait_for_messages(sent, timeout=180)
        wait_until_billed(pipeline, worker, len(events))
        assert_exact(pipeline, events)
    full = _stored_per_message(pipeline)
    assert {m: full[m] for m in partial} == partial  # every message stored after the crash was whole
