"""Chunks close on bytes as well as on messages (USAGE_CHUNK_MAX_BYTES), and billing stays exact.

A backlog of one-event messages is published before the worker starts, so it could
take the whole backlog in one chunk by count; the byte limit must cut it into many.
"""

from __future__ import annotations

import math

import pytest

from tests.factories import varied_events
from tests.integration.pipeline_harness import Pipeline, actual_report, expected_report

pytestmark = pytest.mark.integration

CHUNK_BYTES = 64 * 1024


def test_a_backlog_of_small_messages_is_cut_into_chunks_by_bytes_and_billed_exactly(kafka_bootstrap: str, tmp_path) -> None:
    pipeline = Pipeline.fresh(kafka_bootstrap, tmp_path)
    events = varied_events(600, seed=9)
    messages = [(e.project_id.encode(), e.model_dump_json().encode()) for e in events]
    sent = pipeline.publish_raw(messages)
    backlog_bytes = sum(len(key) + len(value) for key, value in messages)

    with pipeline.worker(
        USAGE_CHUNK_MAX_MESSAGES="10000", USAGE_CHUNK_MAX_BYTES=str(CHUNK_BYTES), USAGE_CHUNK_WITHIN_SECONDS="5"
    ) as worker:
        stats = worker.wait_for_messages(sent)

    assert stats["events_accepted"] == len(events)
    # No chunk over the byte limit: at least this many chunks, whatever the partitions.
    assert stats["chunks"] >= math.ceil(backlog_bytes / CHUNK_BYTES)
    for group_by in ("project", "session"):
        assert actual_report(pipeline.report_cli(group_by), group_by) == expected_report(events, group_by)
