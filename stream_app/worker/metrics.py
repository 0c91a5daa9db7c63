"""Worker counters and their Prometheus text rendering (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class WorkerMetrics:
    """What the worker has done since it started."""

    messages: int = 0
    events_accepted: int = 0
    events_unpriced: int = 0
    duplicates: int = 0
    isolated_messages: int = 0
    chunks: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    sink_retries: int = 0
    last_chunk_seconds: float = 0.0
    # Wall time spent in chunks (decode to written): over elapsed time, how busy the worker is.
    chunk_seconds: float = 0.0
    # When the last chunk was written (Unix time; 0 before the first).
    last_chunk_end: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "events_accepted": self.events_accepted,
            "events_unpriced": self.events_unpriced,
            "duplicates": self.duplicates,
            "isolated_messages": self.isolated_messages,
            "chunks": self.chunks,
            "dead_letters": dict(self.dead_letters),
            "dead_letters_total": sum(self.dead_letters.values()),
            "sink_retries": self.sink_retries,
            "last_chunk_seconds": self.last_chunk_seconds,
            "chunk_seconds": self.chunk_seconds,
            "last_chunk_end": self.last_chunk_end,
        }


def _sample(value: float) -> str:
    # Counters must be exact integers: `{:g}` would print 1234567 as 1.23457e+06.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_prometheus(
    metrics: WorkerMetrics, *, sink_retrying: bool, consumer_lag: dict[int, int] | None = None
) -> str:
    """The counters in Prometheus text exposition format 0.0.4."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {_sample(value)}")

    metric("usage_messages_total", "counter", "Kafka messages consumed.", [("", metrics.messages)])
    metric("usage_events_accepted_total", "counter", "Events validated, priced and written.", [("", metrics.events_accepted)])
    metric("usage_events_unpriced_total", "counter", "Accepted events with no catalog price.", [("", metrics.events_unpriced)])
    metric(
        "usage_duplicates_total",
        "counter",
        "Identical later copies of billed events (same project_id and event_id, same content): not billed again.",
        [("", metrics.duplicates)],
    )
    metric(
        "usage_isolated_messages_total",
        "counter",
        "Messages ClickHouse refused on their own while answering otherwise: dead-lettered as sink_rejected.",
        [("", metrics.isolated_messages)],
    )
    metric(
        "usage_dead_letters_total",
        "counter",
        "Messages or events sent to the dead-letter topic, by reason.",
        [(f'{{reason="{reason}"}}', count) for reason, count in sorted(metrics.dead_letters.items())] or [("", 0)],
    )
    metric("usage_sink_retries_total", "counter", "Failed ClickHouse writes that were retried.", [("", metrics.sink_retries)])
    metric("usage_sink_retrying", "gauge", "1 while a ClickHouse write is failing and being retried.", [("", int(sink_retrying))])
    metric("usage_chunks_total", "counter", "Chunks written.", [("", metrics.chunks)])
    metric(
        "usage_last_chunk_seconds", "gauge", "Wall time of the last chunk, write included.", [("", metrics.last_chunk_seconds)]
    )
    metric(
        "usage_chunk_seconds_total",
        "counter",
        "Wall time spent on chunks, decoding to written: its rate is the share of time the worker is busy.",
        [("", metrics.chunk_seconds)],
    )
    metric(
        "usage_last_chunk_end_timestamp_seconds",
        "gauge",
        "When the last chunk was written (Unix time; 0 before the first): alert when it stops moving.",
        [("", metrics.last_chunk_end)],
    )
    lag = consumer_lag or {}
    metric(
        "usage_consumer_lag",
        "gauge",
        "Messages in the events topic not yet committed by this worker, per assigned partition.",
        [(f'{{partition="{p}"}}', n) for p, n in sorted(lag.items())] or [("", 0)],
    )
    return "\n".join(lines) + "\n"
