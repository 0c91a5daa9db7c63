"""A worker asked to stop while ClickHouse writes fail stops within seconds, committing nothing.

The first release ignored SIGTERM for as long as its retries lasted (18 minutes were seen,
until SIGKILL), holding its port. Here the write fails for ten minutes (an injected outage);
SIGTERM must end the process within seconds with the "stopped without committing" exit
code, and the next worker must bill every event exactly once.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime

import pytest

from stream_app.worker.app import EXIT_UNCOMMITTED
from tests.factories import varied_events
from tests.integration.pipeline_harness import Pipeline, actual_report, expected_report, wait_until_billed

pytestmark = pytest.mark.integration


def test_sigterm_during_a_failing_write_stops_within_seconds_without_committing(kafka_bootstrap: str, tmp_path) -> None:
    pipeline = Pipeline.fresh(kafka_bootstrap, tmp_path)
    events = varied_events(2_000, seed=81, now=datetime.now(UTC))
    sent = pipeline.publish(events)

    failing = pipeline.worker(USAGE_SINK_FAULT_PLAN="outage_seconds=600").start()
    try:
        deadline = time.monotonic() + 60
        while failing.get("/health")["status"] != "degraded" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert failing.get("/health")["status"] == "degraded", failing.log_tail()
        failing.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = failing.process.wait(timeout=30)
        stopped_after = time.monotonic() - started
    finally:
        failing.kill()
    assert code == EXIT_UNCOMMITTED, failing.log_tail()
    assert stopped_after < 10, f"took {stopped_after:.1f} s to stop"
    assert "stopping without committing" in failing.log_tail(200)

    with pipeline.worker() as worker:
        worker.wait_for_messages(sent)
        wait_until_billed(pipeline, worker, len(events))
    assert actual_report(pipeline.report_cli("project"), "project") == expected_report(events, "project")
