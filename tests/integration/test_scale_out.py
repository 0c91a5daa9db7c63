"""Horizontal scale-out, exact: several workers of one consumer group on ONE ClickHouse server.

The server is the session's (`clickhouse_server`: the local chDB-engine server, no Docker
needed; a container where USAGE_TEST_CLICKHOUSE_SERVER=docker). Workers are real
processes that join, leave cleanly and die by SIGKILL under load while the partitions
move between them; every total and window is compared with totals computed from what was
sent, independently of the pipeline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from schemas import UsageTrackingEvent
from stream_app.worker.process import WorkerProcess
from tests.factories import varied_events
from tests.integration.pipeline_harness import (
    BackgroundLoad,
    Pipeline,
    actual_report,
    catalog_cost,
    expected_report,
    wait_until_billed,
)

pytestmark = pytest.mark.integration

# Faust's assignor is sticky: with 4 partitions a third worker joining a 2+2 split gets
# none. Six partitions split 6 -> 3+3 -> 2+2+2, so every worker here owns some.
TOPIC_PARTITIONS = 6
PARTITIONS = set(range(TOPIC_PARTITIONS))
GROUP_BYS = ("project", "agent", "session", "model")


def spread_over_projects(events: list[UsageTrackingEvent], projects: int = 40) -> list[UsageTrackingEvent]:
    """The same traffic over more projects, so that every partition (keyed by project) gets some."""
    return [e.model_copy(update={"project_id": f"proj-{i % projects:02d}"}) for i, e in enumerate(events)]


def expected_windows(events: list[UsageTrackingEvent], window_seconds: int = 60) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """(project, window start) -> (distinct events, cost), from the events themselves."""
    distinct = {(e.project_id, e.event_id): e for e in events}
    out: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0)])
    for e in distinct.values():
        start = int(e.timestamp.timestamp()) // window_seconds * window_seconds
        key = (e.project_id, datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        out[key][0] += 1
        out[key][1] += catalog_cost(e)
    return {k: (n, cost) for k, (n, cost) in out.items()}


def reported_windows(pipeline: Pipeline) -> dict[tuple[str, str], tuple[int, Decimal]]:
    rows = pipeline.report_cli("project", "--every", "1m")
    return {(r["project_id"], r["window_start"]): (r["events"], Decimal(r["cost_usd"])) for r in rows}


def assert_exact(pipeline: Pipeline, events: list[UsageTrackingEvent]) -> None:
    for group_by in GROUP_BYS:
        assert actual_report(pipeline.report_cli(group_by), group_by) == expected_report(events, group_by), group_by
    assert reported_windows(pipeline) == expected_windows(events)


def wait_for_split(workers: list[WorkerProcess], timeout: float = 90.0) -> dict[int, list[int]]:
    """Until the live workers own every partition between them, each at least one, none twice."""
    deadline = time.monotonic() + timeout
    owned: dict[int, list[int]] = {}
    while time.monotonic() < deadline:
        for worker in workers:
            worker.raise_if_exited()
        try:
            owned = {worker.pid: worker.partitions() for worker in workers}
        except OSError:
            time.sleep(0.5)
            continue
        flat = [p for parts in owned.values() for p in parts]
        if sorted(flat) == sorted(PARTITIONS) and all(owned.values()):
            return owned
        time.sleep(0.5)
    raise AssertionError(f"partitions not split over {len(workers)} workers after {timeout:.0f} s: {owned}")


@pytest.fixture
def shared(kafka_bootstrap: str, clickhouse_server: str, tmp_path: Path) -> Pipeline:
    return Pipeline.fresh(kafka_bootstrap, tmp_path, server=clickhouse_server)


def start_worker(pipeline: Pipeline, running: ExitStack, **env: str) -> WorkerProcess:
    worker = pipeline.worker(USAGE_TOPIC_PARTITIONS=str(TOPIC_PARTITIONS), **env)
    running.callback(worker.kill)  # after a clean stop this does nothing
    return worker.start()


def test_workers_join_leave_and_die_under_load_on_one_server_and_bill_exactly(shared: Pipeline) -> None:
    events = spread_over_projects(varied_events(15_000, seed=27))
    # Two waves, so that there is traffic whenever a worker joins, leaves or dies.
    joining = BackgroundLoad(shared.bootstrap, shared.events_topic, events[:9_000], batch=100, pause=0.1)
    leaving = BackgroundLoad(shared.bootstrap, shared.events_topic, events[9_000:], batch=100, pause=0.1)
    with ExitStack() as running:
        first = start_worker(shared, running)
        assert wait_for_split([first]) == {first.pid: sorted(PARTITIONS)}
        joining.start()
        running.callback(joining.join)
        first.wait_for_messages(1)

        second = start_worker(shared, running)  # joins: partitions move to it
        wait_for_split([first, second])
        third = start_worker(shared, running)
        by_three = wait_for_split([first, second, third])
        assert len(by_three) == 3
        joining.join()

        leaving.start()
        running.callback(leaving.join)
        second.stop()  # leaves cleanly: finishes its chunk, commits, hands its partitions over
        wait_for_split([first, third])
        third.wait_for_messages(third.stats()["messages"] + 1)  # busy under load ...
        third.kill()  # ... and dies mid-chunk: what it did not commit is redelivered to `first`
        assert wait_for_split([first]) == {first.pid: sorted(PARTITIONS)}

        leaving.join()
        assert joining.published + leaving.published == len(events)
        wait_until_billed(shared, first, len(events))
        worked = [w.log_path.read_text() for w in (first, second, third)]
    assert all("ClickHouse: http://" in text for text in worked)  # all three wrote to the server
    assert_exact(shared, events)


def test_clickhouse_up_three_workers_emit_report_down(kafka_bootstrap: str, tmp_path: Path) -> None:
    """What README's "Several workers" says to type, checked; `down` leaves no process behind."""
    home = tmp_path / "home"
    env = {**os.environ, "USAGE_PIPELINE_HOME": str(home), "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    env.pop("CLICKHOUSE_URL", None)
    pipeline = Pipeline.fresh(kafka_bootstrap, tmp_path)

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stream_app", *args], env={**env, **extra}, capture_output=True, text=True, timeout=180
        )

    events = spread_over_projects(varied_events(3_000, seed=28))
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("".join(e.model_dump_json() + "\n" for e in events))
    with ExitStack() as running:
        running.callback(lambda: cli("clickhouse", "down"))
        up = cli("clickhouse", "up")
        assert up.returncode == 0, up.stderr
        pipeline.store_url = up.stdout.strip()
        assert pipeline.store_url.startswith("http://127.0.0.1:")
        workers = [start_worker(pipeline, running, USAGE_PIPELINE_HOME=str(home)) for _ in range(3)]
        wait_for_split(workers)
        emit = cli("emit", str(jsonl), **{k: v for k, v in pipeline.env().items() if k != "CLICKHOUSE_URL"})
        assert emit.returncode == 0, emit.stdout + emit.stderr
        wait_until_billed(pipeline, workers[0], len(events))
        assert sum(1 for w in workers if w.stats()["messages"] > 0) >= 2  # the work was shared
        assert_exact(pipeline, events)
        for worker in workers:
            worker.stop()
        down = cli("clickhouse", "down")
        assert down.returncode == 0 and "stopped" in down.stderr, down.stderr
    leftovers = subprocess.run(["pgrep", "-f", f"stream_app.clickhouse_server --home {home}"], capture_output=True, text=True)
    assert leftovers.stdout == "", f"processes left behind: {leftovers.stdout}"
    assert cli("clickhouse", "status").returncode == 3
