"""Worker counters and their Prometheus text."""

from __future__ import annotations

from collections import Counter

import pytest

from stream_app.worker.metrics import WorkerMetrics, render_prometheus


def samples(text: str) -> dict[str, str]:
    """Sample lines as {name{labels}: value}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = value
    return out


def test_render_samples_with_labels():
    metrics = WorkerMetrics(
        messages=120, events_accepted=5000, events_unpriced=7, duplicates=3, isolated_messages=1, chunks=12,
        dead_letters=Counter({"invalid_json": 2, "empty_message": 1}), sink_retries=4, chunk_seconds=3.5,
        last_chunk_end=1_796_400_000.25,
    )

    text = render_prometheus(metrics, sink_retrying=True, consumer_lag={1: 40, 0: 7})

    assert samples(text) == {
        "usage_messages_total": "120",
        "usage_events_accepted_total": "5000",
        "usage_events_unpriced_total": "7",
        "usage_duplicates_total": "3",
        "usage_isolated_messages_total": "1",
        'usage_dead_letters_total{reason="empty_message"}': "1",
        'usage_dead_letters_total{reason="invalid_json"}': "2",
        "usage_sink_retries_total": "4",
        "usage_sink_retrying": "1",
        "usage_chunks_total": "12",
        "usage_last_chunk_seconds": "0",
        "usage_chunk_seconds_total": "3.5",
        "usage_last_chunk_end_timestamp_seconds": "1796400000.25",
        'usage_consumer_lag{partition="0"}': "7",
        'usage_consumer_lag{partition="1"}': "40",
    }


def test_dead_letter_samples_are_sorted_by_reason():
    metrics = WorkerMetrics(dead_letters=Counter({"project_key_mismatch": 1, "empty_batch": 1, "invalid_event": 1}))

    lines = [l for l in render_prometheus(metrics, sink_retrying=False).splitlines() if l.startswith("usage_dead_letters_total{")]

    assert lines == [
        'usage_dead_letters_total{reason="empty_batch"} 1',
        'usage_dead_letters_total{reason="invalid_event"} 1',
        'usage_dead_letters_total{reason="project_key_mismatch"} 1',
    ]


def test_fresh_worker_exports_zeroes():
    text = render_prometheus(WorkerMetrics(), sink_retrying=False)

    assert samples(text) == {
        "usage_messages_total": "0",
        "usage_events_accepted_total": "0",
        "usage_events_unpriced_total": "0",
        "usage_duplicates_total": "0",
        "usage_isolated_messages_total": "0",
        "usage_dead_letters_total": "0",
        "usage_sink_retries_total": "0",
        "usage_sink_retrying": "0",
        "usage_chunks_total": "0",
        "usage_last_chunk_seconds": "0",
        "usage_chunk_seconds_total": "0",
        "usage_last_chunk_end_timestamp_seconds": "0",
        "usage_consumer_lag": "0",
    }


def test_every_metric_has_help_and_type_before_its_samples():
    lines = render_prometheus(WorkerMetrics(dead_letters=Counter({"x": 1})), sink_retrying=False).splitlines()

    for i, line in enumerate(lines):
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert lines[i + 1].startswith(f"# TYPE {name} ")
            assert lines[i + 2].startswith(name)
    types = {l.split()[2]: l.split()[3] for l in lines if l.startswith("# TYPE ")}
    assert types["usage_sink_retrying"] == "gauge"
    assert {k for k, v in types.items() if v == "counter"} == {
        "usage_messages_total", "usage_events_accepted_total", "usage_events_unpriced_total",
        "usage_duplicates_total", "usage_isolated_messages_total", "usage_dead_letters_total", "usage_sink_retries_total", "usage_chunks_total",
        "usage_chunk_seconds_total",
    }
    assert all(name.endswith("_total") for name, kind in types.items() if kind == "counter")


def test_text_ends_with_a_newline():
    text = render_prometheus(WorkerMetrics(), sink_retrying=False)
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_large_counters_are_exported_exactly():
    metrics = WorkerMetrics(messages=1_234_567, events_accepted=987_654_321, dead_letters=Counter({"invalid_json": 1_000_001}))

    exported = samples(render_prometheus(metrics, sink_retrying=False))

    assert float(exported["usage_messages_total"]) == 1_234_567
    assert float(exported["usage_events_accepted_total"]) == 987_654_321
    assert float(exported['usage_dead_letters_total{reason="invalid_json"}']) == 1_000_001


def test_as_dict():
    metrics = WorkerMetrics(messages=3, dead_letters=Counter({"invalid_json": 2, "empty_message": 1}), last_chunk_seconds=0.25)

    assert metrics.as_dict() == {
        "messages": 3,
        "events_accepted": 0,
        "events_unpriced": 0,
        "duplicates": 0,
        "isolated_messages": 0,
        "chunks": 0,
        "dead_letters": {"invalid_json": 2, "empty_message": 1},
        "dead_letters_total": 3,
        "sink_retries": 0,
        "last_chunk_seconds": 0.25,
        "chunk_seconds": 0.0,
        "last_chunk_end": 0.0,
    }
