"""Exact billing on the pipeline's worst days (issue 5): crashes, outages, rebalances, late events.

Real broker, real worker processes, real ClickHouse engine; thousands of events each,
every total compared with totals computed independently from what was sent.
"""

from __future__ import annotations

import random
import urllib.error
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest

from stream_app.broker.local import LocalKafkaBroker, find_free_port
from tests.factories import varied_events
from tests.integration.pipeline_harness import (
    BackgroundLoad,
    Pipeline,
    actual_report,
    both_stores,
    expected_report,
    read_store,
    wait_until_billed,
)

pytestmark = pytest.mark.integration


def assert_exact(pipeline: Pipeline, events, group_bys=("project", "agent", "session", "model")) -> None:
    for group_by in group_bys:
        assert actual_report(pipeline.report_cli(group_by), group_by) == expected_report(events, group_by), group_by


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path, store_server: str | None) -> Pipeline:
    return Pipeline.fresh(kafka_bootstrap, tmp_path, server=store_server)


@both_stores
def test_sigkill_at_random_moments_under_load_loses_and_doubles_nothing(pipeline: Pipeline) -> None:
    events = varied_events(12_000, seed=21)
    rng = random.Random(5)
    load = BackgroundLoad(pipeline.bootstrap, pipeline.events_topic, events, batch=250, pause=0.01).start()
    kills = 0
    try:
        while kills < 3:
            worker = pipeline.worker().start()
            try:
                time.sleep(rng.uniform(0.5, 2.5))  # mid-chunk, mid-write or mid-commit: wherever it lands
            finally:
                worker.kill()
            kills += 1
        load.join()
    finally:
        load.join()
    with pipeline.worker() as worker:
        wait_until_billed(pipeline, worker, len(events))
    assert_exact(pipeline, events)


@both_stores
def test_clickhouse_outage_is_ridden_out_visibly_and_caught_up(pipeline: Pipeline) -> None:
    events = varied_events(4_000, seed=22)
    with pipeline.worker(USAGE_SINK_FAULT_PLAN="outage_seconds=8") as worker:
        sent = pipeline.publish(events[:2_000])
        # The first write starts the outage: the worker retries, and says so.
        deadline = time.monotonic() + 20
        while not worker.stats()["sink_retrying"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.get("/health")["status"] == "degraded"
        metrics = _metrics_text(worker)
        assert "usage_sink_retrying 1" in metrics
        with pytest.raises(urllib.error.HTTPError) as refused:  # no totals while they cannot be read
            worker.report("project")
        assert refused.value.code == 503
        sent += pipeline.publish(events[2_000:])
        stats = worker.wait_for_messages(sent, timeout=120)
        assert stats["sink_retries"] >= 3
        wait_until_billed(pipeline, worker, len(events))
        assert worker.get("/health")["status"] == "ok"
        assert "usage_sink_retrying 0" in _metrics_text(worker)
    assert "ClickHouse write failed" in worker.log_path.read_text()
    assert_exact(pipeline, events)


def _metrics_text(worker) -> str:
    import urllib.request

    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as response:
        return response.read().decode()


def test_broker_restart_while_producing_and_consuming(tmp_path) -> None:
    broker = LocalKafkaBroker(tmp_path / "own-broker", port=find_free_port())
    try:
        bootstrap = broker.up()
        pipeline = Pipeline.fresh(bootstrap, tmp_path / "p")
        events = varied_events(8_000, seed=23)
        with pipeline.worker() as worker:
            load = BackgroundLoad(bootstrap, pipeline.events_topic, events, batch=200, pause=0.02).start()
            time.sleep(1.5)
            broker.down()
            time.sleep(3)
            assert broker.up() == bootstrap  # same address, as a restarted broker keeps
            load.join(timeout=300)
            assert load.published == len(events)
            wait_until_billed(pipeline, worker, len(events), timeout=240)
        assert_exact(pipeline, events, group_bys=("project", "model"))
    finally:
        broker.down()


def test_workers_joining_and_leaving_under_load_bill_exactly(pipeline: Pipeline, tmp_path) -> None:
    """Three workers, each with its own embedded store, share the partitions as they come and go.

    test_scale_out.py runs the same on one shared ClickHouse server.

    With no shared ClickHouse server here, the billed events of the stores are combined
    afterwards by the table's own replace semantics (every row version into one
    ReplacingMergeTree, read with FINAL: a message processed by two workers wrote the same
    keys in both stores), and the window cells rebuilt from them. A store's cells only
    cover the offsets its own worker saw, so they are not combined; test_scale_out.py
    checks the workers' own cells on one server.
    """
    events = varied_events(15_000, seed=24)
    stores = []

    def worker(name: str):
        store = f"chdb://{tmp_path / name}"
        stores.append(store)
        return pipeline.worker(CLICKHOUSE_URL=store, USAGE_PIPELINE_HOME=str(tmp_path / f"home-{name}"))

    load = BackgroundLoad(pipeline.bootstrap, pipeline.events_topic, events, batch=250, pause=0.03).start()
    with ExitStack() as running:
        first = worker("w1").start()
        running.callback(first.stop)
        time.sleep(2)
        second = worker("w2").start()
        running.callback(second.stop)
        time.sleep(2)
        third = worker("w3").start()
        running.callback(third.kill)
        time.sleep(2)
        second.stop()  # leaves cleanly: its partitions move to the others
        time.sleep(2)
        third.kill()  # dies: its uncommitted chunk is redelivered to the others
        load.join()
        # The last worker standing drains whatever is left.
        _wait_group_drained(pipeline, first)
    combined = _combine_stores(stores, tmp_path / "combined")
    got = actual_report(_report_rows(combined, "project"), "project")
    assert got == expected_report(events, "project")


def _wait_group_drained(pipeline: Pipeline, worker, timeout: float = 180.0) -> None:
    """Until the worker's consumer lag is zero on every partition for two readings in a row."""
    deadline = time.monotonic() + timeout
    calm = 0
    while time.monotonic() < deadline and calm < 2:
        text = _metrics_text(worker)
        lags = [int(line.split()[-1]) for line in text.splitlines() if line.startswith("usage_consumer_lag{")]
        calm = calm + 1 if lags and sum(lags) == 0 and len(lags) == 4 else 0
        time.sleep(1.0)
    assert calm >= 2, "the consumer group did not drain"


def _combine_stores(stores: list[str], target) -> str:
    from stream_app.core.rows import EVENT_COLUMNS
    from stream_app.sink.cell_rebuild import upgrade_to_window_cells
    from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url

    tables = {"usage_events": EVENT_COLUMNS}
    rows: dict[str, list[tuple]] = {table: [] for table in tables}
    for store in stores:
        for table, columns in tables.items():
            rows[table] += read_store(store, f"SELECT {', '.join(columns)} FROM usage.{table}")
    combined = f"chdb://{target}"
    with ClickHouseSink(parse_clickhouse_url(combined), window_seconds=60) as sink:
        for table, columns in tables.items():
            sink.client.insert(table, rows[table], column_names=list(columns), database="usage")
        upgrade_to_window_cells(sink.client, "usage", 60)
    return combined


def _report_rows(store: str, group_by: str):
    from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url
    from stream_app.sink.queries import ReportQuery

    with ClickHouseSink(parse_clickhouse_url(store), window_seconds=60) as sink:
        return sink.report(ReportQuery(group_by))


@both_stores
def test_late_events_are_billed_and_correct_their_closed_windows(pipeline: Pipeline) -> None:
    now = datetime.now(UTC)
    hours_ago = now - timedelta(hours=3)
    current = varied_events(2_000, seed=25, now=now, spread_seconds=60)
    late = varied_events(1_000, seed=26, now=hours_ago, spread_seconds=120)
    with pipeline.worker() as worker:
        sent = pipeline.publish(current + late[:600])
        worker.wait_for_messages(sent)
        # Hours later (in event time) the rest arrives, plus re-sends of events already billed.
        sent += pipeline.publish(late[600:] + late[:300])
        worker.wait_for_messages(sent)
        wait_until_billed(pipeline, worker, 3_000)
    assert_exact(pipeline, current + late)
    # The closed windows hold exactly their events: each message folded in once, never twice.
    window_rows = read_store(
        pipeline.store_url,
        f"SELECT project_id, window_start, sum(events), sum(input_tokens), sum(cost_usd) FROM {pipeline.database}.usage_window_cells FINAL "
        f"WHERE grouping = 'project' AND level = 60 AND window_start < fromUnixTimestamp({int((now - timedelta(hours=1)).timestamp())}) "
        "GROUP BY project_id, window_start",
    )
    expected: dict[tuple, list] = {}
    costs = expected_report(late, "project")  # totals per project, to cross-check the sum of windows
    for e in late:
        start = datetime.fromtimestamp(int(e.timestamp.timestamp()) // 60 * 60, UTC).replace(tzinfo=None)
        entry = expected.setdefault((e.project_id, start), [0, 0])
        entry[0] += 1
        entry[1] += e.usage.input_tokens
    got = {(p, w.replace(tzinfo=None)): [n, tokens] for p, w, n, tokens, _ in window_rows}
    assert got == expected
    for project, in costs:
        assert sum(c for p, _, _, _, c in window_rows if p == project) == costs[(project,)]["cost_usd"]
