"""Time every dashboard panel query on a store holding N events (p50 / p99 / max per panel).

    .venv/bin/python benchmarks/dashboard_panels.py --events 300000 --days 30
    .venv/bin/python benchmarks/dashboard_panels.py --store /tmp/bigstore --reuse   # time an existing store again

Loads demo traffic (4 projects, 9 agents, 8 tools, 8 models, 1% failed calls) spread over
`--days` straight into a fresh embedded store the way the worker writes it (billed events,
window and tool rows per Kafka message of 250 events, no broker), then runs each panel of
`stream_app.sink.dashboard_queries.panels` `--repeat` times per filter: every preset range,
with and without a project. The figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream_app.core.counting import Copy  # noqa: E402
from stream_app.core.decode import DecodedEvent, MessageOrigin  # noqa: E402
from stream_app.core.pricing import price_event  # noqa: E402
from stream_app.core.rows import build_chunk_rows  # noqa: E402
from stream_app.demo.traffic import demo_events  # noqa: E402
from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url  # noqa: E402
from stream_app.sink.dashboard_queries import RANGES, panels, resolve_filter  # noqa: E402

WINDOW = 60
MESSAGE_EVENTS = 250
TOPIC = "llm.usage.events"


def load(sink: ClickHouseSink, count: int, days: int, now: datetime, seed: int = 11) -> None:
    """Write `count` demo events spread over `days`, in worker-sized messages and chunks."""
    written, offset, started = 0, 0, time.monotonic()
    step = 50_000
    while written < count:
        n = min(step, count - written)
        events = demo_events(n, now=now, seed=seed + written, spread=timedelta(days=days))
        copies = []
        for start in range(0, n, MESSAGE_EVENTS):
            offset += 1
            for index, event in enumerate(events[start : start + MESSAGE_EVENTS]):
                origin = MessageOrigin(TOPIC, offset % 4, offset, event.project_id.encode())
                copies.append(Copy(DecodedEvent(event, origin, index), 0))
        for start in range(0, len(copies), 10_000):
            rows = build_chunk_rows(
                copies[start : start + 10_000], [], price=price_event, window_seconds=WINDOW, ingested_at=now
            )
            sink.write_rows(rows)
        written += n
        rate = written / (time.monotonic() - started)
        print(f"\rloaded {written:,} / {count:,} events ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def time_panels(sink: ClickHouseSink, now: datetime, repeat: int) -> dict[str, list[float]]:
    """Milliseconds per run of each panel, over every preset range with and without a project."""
    timings: dict[str, list[float]] = {}
    for range_name in RANGES:
        for project in (None, "acme-support"):
            f = resolve_filter(range_name, now, WINDOW, project=project)
            for panel in panels(sink.location.database, f):
                if panel.sql is None:
                    continue
                for _ in range(repeat):
                    began = time.perf_counter()
                    sink.query_rows(panel.sql)
                    timings.setdefault(panel.name, []).append((time.perf_counter() - began) * 1000)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--store", type=Path, help="embedded store directory (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="time the store as it is, load nothing")
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or Path(tmp) / "store"
        with ClickHouseSink(parse_clickhouse_url(f"chdb://{store}"), window_seconds=WINDOW) as sink:
            if not args.reuse:
                load(sink, args.events, args.days, now)
            sink.client.command(f"OPTIMIZE TABLE {sink.db}.usage_events FINAL")
            stored = sink.query_rows(f"SELECT count() FROM {sink.db}.usage_events")[0][0]
            windows = sink.query_rows(f"SELECT count() FROM {sink.db}.usage_window_cells")[0][0]
            print(f"store: {stored:,} events, {windows:,} window rows; {args.repeat} runs per panel and filter "
                  f"({len(RANGES)} ranges x with/without project)")
            timings = time_panels(sink, now, args.repeat)
    print(f"{'panel':24} {'runs':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in timings.items():
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"{name:24} {len(values):5d} {statistics.median(values):8.1f} {p99:8.1f} {values[-1]:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
