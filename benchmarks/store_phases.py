"""The store-scaling benchmark's in-process phases, each run in a child process.

    python benchmarks/store_phases.py preload|profile '<json arguments>'

An embedded store can be opened by one process at a time, and chDB holds one store
directory per process, so `benchmarks/store_scaling.py` runs each phase that opens a
store in a child of its own (before and after the worker has it). A phase prints one
JSON object on stdout; progress goes to stderr.

- preload: 30 days of history straight into the store's own tables, in SQL: the events
  (`store_history.history_insert_sql`), then their window and tool rows built by the
  project's own per-message builders, exactly the rows the worker would have written;
  then `OPTIMIZE … FINAL`, as a store that has lived with its history would be merged.
- profile: chunks of fresh messages through the worker's own `ChunkProcessor` on the
  pre-loaded store, timing its steps (look-up, price+rows+windows, each table's insert).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from store_history import fit_model_rates, fresh_events, history_insert_sql  # noqa: E402

from stream_app.sink.clickhouse import ClickHouseLocation, ClickHouseSink  # noqa: E402

DATABASE = "usage"
TABLES = ("usage_events", "usage_windows", "usage_tool_windows")


def _log(message: str) -> None:
    print(f"    {message}", file=sys.stderr, flush=True)


def _open(store: str, window_seconds: int) -> ClickHouseSink:
    return ClickHouseSink(ClickHouseLocation("chdb", DATABASE, path=Path(store)), window_seconds=window_seconds).open()


def store_shape(sink: ClickHouseSink) -> dict[str, Any]:
    """Rows and active parts per table."""
    rows = sink.query_rows(
        f"SELECT table, sum(rows), count() FROM system.parts WHERE active AND database = '{DATABASE}' "
        f"AND table IN {TABLES} GROUP BY table"
    )
    found = {table: (int(r), int(parts)) for table, r, parts in rows}
    return {table: {"rows": found.get(table, (0, 0))[0], "parts": found.get(table, (0, 0))[1]} for table in TABLES}


def preload(args: dict[str, Any]) -> dict[str, Any]:
    """History into a fresh store; returns the time of each step and the store's shape."""
    from stream_app.sink.message_windows import message_tool_windows_insert_sql, message_windows_insert_sql

    window = args["window_seconds"]
    sink = _open(args["store"], window)
    timings: dict[str, float] = {}
    try:
        events = args["events"]
        if events:
            now = datetime.fromisoformat(args["now"])
            rates = fit_model_rates()
            steps = (
                ("events", history_insert_sql(
                    DATABASE, events, start=now - timedelta(days=args["days"]), end=now - timedelta(minutes=15),
                    window_seconds=window, events_per_message=args["events_per_message"],
                    partitions=args["partitions"], rates=rates, random_ids=args["random_ids"],
                )),
                ("windows", message_windows_insert_sql(DATABASE, "", window_seconds=window)),
                ("tool windows", message_tool_windows_insert_sql(DATABASE, "", window_seconds=window)),
            )
            if args["optimize"]:
                steps += tuple((f"optimize {t}", f"OPTIMIZE TABLE {DATABASE}.{t} FINAL") for t in TABLES)
            for name, sql in steps:
                started = time.perf_counter()
                sink.client.command(sql)
                timings[name] = time.perf_counter() - started
                _log(f"preload {name}: {timings[name]:.1f} s")
        return {"seconds": timings, "shape": store_shape(sink)}
    finally:
        sink.close()


class _TimedClient:
    """The sink's client, timing each insert by table (the benchmark's only instrument)."""

    def __init__(self, client: Any, timings: dict[str, list[float]]) -> None:
        self._client = client
        self._timings = timings

    def insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._client.insert(table, *args, **kwargs)
        finally:
            self._timings[f"insert {table}"].append(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def profile(args: dict[str, Any]) -> dict[str, Any]:
    """Chunks through the worker's ChunkProcessor on the store; median seconds per step."""
    import stream_app.worker.chunk as chunk_module
    from producers.batching import pack_batches
    from stream_app.core.decode import MessageOrigin
    from stream_app.worker.chunk import ChunkProcessor
    from stream_app.worker.metrics import WorkerMetrics

    window = args["window_seconds"]
    sink = _open(args["store"], window)
    timings: dict[str, list[float]] = defaultdict(list)
    real_lookup, real_build = sink.lookup, chunk_module.build_chunk_rows

    def timed(name: str, function: Any) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                timings[name].append(time.perf_counter() - started)

        return run

    sink._client = _TimedClient(sink.client, timings)  # noqa: SLF001 - instrumenting, not replacing
    sink.lookup = timed("look-up", real_lookup)  # type: ignore[method-assign]
    chunk_module.build_chunk_rows = timed("price+rows+windows", real_build)
    try:
        processor = ChunkProcessor(
            sink, WorkerMetrics(), window_seconds=window, max_future_skew=timedelta(minutes=5),
            consumer_group="store-scaling-profile",
        )
        per_chunk = args["messages_per_chunk"] * args["events_per_message"]
        events = fresh_events(
            args["chunks"] * per_chunk, now=datetime.now(timezone.utc), seed=424242, random_ids=args["random_ids"]
        )
        offset = 0
        for c in range(args["chunks"]):
            batches = pack_batches(events[c * per_chunk : (c + 1) * per_chunk], args["events_per_message"])
            messages = []
            for batch in batches:
                messages.append((batch.payload, MessageOrigin("usage-profile", 0, offset, batch.key)))
                offset += 1
            started = time.perf_counter()
            outcome = processor.process(messages)
            timings["chunk"].append(time.perf_counter() - started)
            timings["events"].append(outcome.rows.events)
        return {name: statistics.median(values) for name, values in timings.items()}
    finally:
        chunk_module.build_chunk_rows = real_build
        sink.close()


PHASES = {"preload": preload, "profile": profile}

if __name__ == "__main__":
    phase, raw = sys.argv[1], sys.argv[2]
    print(json.dumps(PHASES[phase](json.loads(raw))))
