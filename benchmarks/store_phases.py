"""The store-scaling benchmark's in-process phases, each run in a child process.

    python benchmarks/store_phases.py preload|profile '<json arguments>'

An embedded store can be opened by one process at a time, and chDB holds one store
directory per process, so `benchmarks/store_scaling.py` runs each phase that opens a
store in a child of its own (before and after the worker has it). A phase prints one
JSON object on stdout; progress goes to stderr.

- preload: 30 days of history straight into the store's own tables, in SQL: the events
  (`store_history.history_insert_sql`), then their window cells (rebuilt from the events
  as the upgrade does) and tool rows, exactly what the worker would have written;
  then `OPTIMIZE … FINAL`, as a store that has lived with its history would be merged.
- profile: chunks of fresh messages through the worker's own `ChunkProcessor` on the
  pre-loaded store, timing its steps (look-up, price+rows+windows, each table's insert);
  then the billing queries' SQL alone (`report_sql`, no HTTP, no JSON) and every dashboard
  panel's SQL (`dashboard_queries.panels`), to tell the store's share of a request's time.
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
TABLES = ("usage_events", "usage_window_cells", "usage_tool_windows")


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
    from stream_app.sink.cell_rebuild import event_days_sql, rebuild_days
    from stream_app.sink.message_windows import message_tool_windows_insert_sql

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
                # The cells the worker would have folded, built from the events (as the upgrade does).
                ("window cells", lambda: rebuild_days(
                    sink.client, DATABASE, window, sink.query_rows(event_days_sql(DATABASE))
                )),
                ("tool windows", message_tool_windows_insert_sql(DATABASE, "", window_seconds=window)),
            )
            if args["optimize"]:
                steps += tuple((f"optimize {t}", f"OPTIMIZE TABLE {DATABASE}.{t} FINAL") for t in TABLES)
            for name, sql in steps:
                started = time.perf_counter()
                sql() if callable(sql) else sink.client.command(sql)
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
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return self._client.insert(table, *args, **kwargs)
        finally:
            self._timings[f"insert {table}"].append(time.perf_counter() - started)
            self._timings[f"insert {table} cpu"].append(time.process_time() - cpu)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def profile(args: dict[str, Any]) -> dict[str, Any]:
    """Chunk steps (median seconds), then query SQL timings (ms), on the store."""
    sink = _open(args["store"], args["window_seconds"])
    try:
        chunks = profile_chunks(sink, args) if args["chunks"] else {}
        shape = store_shape(sink)
        return {
            "chunk": chunks, "shape": shape, "report_sql": profile_report_sql(sink, args), "panels": profile_panels(sink, args),
        }
    finally:
        sink.close()


def _timed_ms(run: Any, requests: int) -> dict[str, float]:
    """One cold run, then `requests` timed ones: p50, p99 and rows."""
    rows = len(run())
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50": samples[len(samples) // 2], "p99": samples[min(len(samples) - 1, round(0.99 * len(samples)) - 1)], "rows": rows}


def profile_report_sql(sink: ClickHouseSink, args: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each billing query's SQL (what `/report` runs), without HTTP or JSON."""
    from stream_app.core.times import parse_time
    from stream_app.sink.queries import ReportQuery, parse_every, report_sql

    out = {}
    for name, params in args["billing_queries"]:
        def run(params: dict[str, str] = params) -> list[tuple]:
            query = ReportQuery(
                group_by=params["group_by"],
                since=parse_time(params["since"]) if "since" in params else None,
                every=parse_every(params["every"], sink.window_seconds) if "every" in params else None,
            )
            return sink.query_rows(report_sql(DATABASE, query, sink.window_seconds))

        out[name] = _timed_ms(run, args["sql_requests"])
    return out


def profile_panels(sink: ClickHouseSink, args: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Every dashboard panel's SQL, per view (range and project), as the page runs them."""
    from stream_app.sink.dashboard_queries import panels, resolve_filter

    out: dict[str, dict[str, dict[str, float]]] = {}
    for view, params in args["dashboard_views"]:
        f = resolve_filter(params["range"], datetime.now(timezone.utc), sink.window_seconds, project=params.get("project"))
        out[view] = {
            panel.name: _timed_ms(lambda sql=panel.sql: sink.query_rows(sql), args["sql_requests"])
            for panel in panels(DATABASE, f)
            if panel.sql is not None
        }
    return out


def profile_chunks(sink: ClickHouseSink, args: dict[str, Any]) -> dict[str, float]:
    """Chunks through the worker's ChunkProcessor on the store; median seconds per step."""
    import stream_app.worker.chunk as chunk_module
    from producers.batching import pack_batches
    from stream_app.core.decode import MessageOrigin
    from stream_app.worker.chunk import ChunkProcessor
    from stream_app.worker.metrics import WorkerMetrics

    window = args["window_seconds"]
    timings: dict[str, list[float]] = defaultdict(list)
    real_client, real_lookup, real_build = sink._client, sink.lookup, chunk_module.build_chunk_rows

    def timed(name: str, function: Any) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*a, **k)
            finally:
                timings[name].append(time.perf_counter() - started)
                timings[f"{name} cpu"].append(time.process_time() - cpu)

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
        # One more chunk than timed: the first loads the price catalog and warms caches.
        events = fresh_events(
            (args["chunks"] + 1) * per_chunk, now=datetime.now(timezone.utc), seed=424242, random_ids=args["random_ids"]
        )
        offset = 0
        for c in range(args["chunks"] + 1):
            batches = pack_batches(events[c * per_chunk : (c + 1) * per_chunk], args["events_per_message"])
            messages = []
            for batch in batches:
                messages.append((batch.payload, MessageOrigin("usage-profile", 0, offset, batch.key)))
                offset += 1
            if c == 0:
                processor.process(messages)
                timings.clear()
                continue
            started, cpu = time.perf_counter(), time.process_time()
            outcome = processor.process(messages)
            timings["chunk"].append(time.perf_counter() - started)
            timings["chunk cpu"].append(time.process_time() - cpu)
            timings["events"].append(outcome.rows.events)
        return {name: statistics.median(values) for name, values in timings.items()}
    finally:
        chunk_module.build_chunk_rows = real_build
        sink._client = real_client  # noqa: SLF001
        del sink.lookup  # the class's own again


PHASES = {"preload": preload, "profile": profile}

if __name__ == "__main__":
    phase, raw = sys.argv[1], sys.argv[2]
    print(json.dumps(PHASES[phase](json.loads(raw))))
