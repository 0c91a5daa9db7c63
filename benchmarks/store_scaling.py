"""How the worker and billing queries scale with stored history (issue 9's benchmark).

    python benchmarks/store_scaling.py [--sizes 0,1M,10M] [--fresh-events 200000] [--rounds 2]
                                       [--requests 100] [--random-ids] [--profile-chunks 4]

1. Pre-load, one fresh embedded store (chdb:// in a temp dir) per size: `size` events of
   30 days of history (several projects, one holding 80%) straight into `usage_events` in
   SQL, their window cells and tool rows built by the project's own SQL builders
   (`benchmarks/store_phases.py preload`; the population is `store_history.py`).
2. Rounds: each round publishes `--fresh-events` new events (same population, stamped over
   the last 10 minutes, time-ordered UUIDv7 ids) to a fresh topic, 500 to a message; then
   every size in turn (alternating order) runs a real `usage-pipeline worker` process
   that drains it: events/s after its first chunk, its CPU-seconds, and per-chunk seconds
   from `/stats` (`last_chunk_seconds`). The empty store is emptied again each round.
   The first round also measures a bare aiokafka consumer + `json.loads` (the ceiling).
3. Last round, worker still up: billing queries through `/report`, `--requests` each
   (p50/p99/max), and the dashboard's `/dashboard/data` (all panels of a view).
4. Worker stopped, in process on the same store (`store_phases.py profile`): chunks of
   fresh messages through its ChunkProcessor, timing look-up, price+rows+windows and each
   table's insert; the billing queries' SQL alone; each dashboard panel's SQL alone.

Uses KAFKA_BOOTSTRAP_SERVERS, or starts (and stops) a local broker. Prints a table per
size, then the throughput ratio largest/empty (goal >= 0.9) and whether every billing
query's p99 is under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kafka import BenchmarkKafka  # noqa: E402

from store_history import iter_fresh_events  # noqa: E402
from store_results import Drain, Latency, SizeResult, print_size, print_summary, size_label  # noqa: E402
from worker_throughput import _bare_consume, _peak_rss_mb, _wait_first_chunk  # noqa: E402

from producers import KafkaPublisher  # noqa: E402
from stream_app.settings import load_settings  # noqa: E402
from stream_app.worker.process import WorkerProcess  # noqa: E402

EVENTS_PER_MESSAGE = 500
PHASES = Path(__file__).resolve().parent / "store_phases.py"

# (name, /report parameters): SPEC.md §4's billing questions.
BILLING_QUERIES: tuple[tuple[str, dict[str, str]], ...] = (
    ("all-time by project", {"group_by": "project"}),
    ("last day by agent", {"group_by": "agent", "since": "1d"}),
    ("last hour by session", {"group_by": "session", "since": "1h"}),
    ("30 days by hour", {"group_by": "project", "since": "30d", "every": "1h"}),
)
# (name, /dashboard/data parameters): the page as it opens, a month, and one project's day.
DASHBOARD_VIEWS: tuple[tuple[str, dict[str, str]], ...] = (
    ("24h, all projects", {"range": "24h"}),
    ("30d, all projects", {"range": "30d"}),
    ("24h, acme-support", {"range": "24h", "project": "acme-support"}),
)


def parse_size(text: str) -> int:
    """`0`, `300k`, `1M`, `2.5M`, `10000` -> events."""
    text = text.strip()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,1M,10M", help="stored history sizes, e.g. 0,100k,300k")
    parser.add_argument("--fresh-events", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=100, help="requests per billing query")
    parser.add_argument("--random-ids", action="store_true", help="random UUIDv4 event ids instead of UUIDv7")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--history-events-per-message", type=int, default=EVENTS_PER_MESSAGE)
    parser.add_argument("--profile-chunks", type=int, default=4, help="chunks timed in process (0: skip)")
    parser.add_argument("--no-optimize", action="store_true", help="leave the pre-loaded parts unmerged")
    parser.add_argument(
        "--rounds", type=int, default=2,
        help="fresh topics drained by every size in turn (throughput is the median; a busy machine hits all sizes alike)",
    )
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]

    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="usage-store-scaling-"))
    broker = BenchmarkKafka(settings, work)
    try:
        bootstrap = broker.up()
        tag = uuid.uuid4().hex[:8]
        from stream_app.broker.topics import ensure_topics_sync

        now = datetime.now(timezone.utc)
        results: list[SizeResult] = []
        stores: dict[int, Path] = {}
        for events in sizes:
            _progress(f"size {size_label(events)}: pre-loading {events:,} events of {args.days} days of history ...")
            stores[events] = work / f"store-{size_label(events)}"
            results.append(SizeResult(events, _run_phase("preload", _phase_args(args, settings, stores[events], events, now))))

        baseline = 0.0
        for round_ in range(args.rounds):
            topic = f"bench-scaling-{tag}-{round_}"
            ensure_topics_sync(bootstrap, {topic: settings.topic_partitions, f"{topic}.dlq": settings.topic_partitions})
            _progress(f"round {round_ + 1}/{args.rounds}: publishing {args.fresh_events:,} fresh events to {topic} ...")
            started = time.perf_counter()
            messages = asyncio.run(
                _publish_fresh(bootstrap, topic, args.fresh_events, datetime.now(timezone.utc), args.random_ids, seed=11 + round_)
            )
            _progress(f"  {messages:,} messages in {time.perf_counter() - started:.1f} s")
            if round_ == 0:
                baseline = args.fresh_events / asyncio.run(_bare_consume(bootstrap, topic, messages))
                _progress(f"baseline: bare aiokafka + json.loads {baseline:,.0f} events/s")
            last = round_ == args.rounds - 1
            # Sizes take turns, in alternating order, so a busy spell of the machine hits them alike.
            for result in results if round_ % 2 == 0 else results[::-1]:
                label = size_label(result.events)
                store = stores[result.events]
                if result.events == 0:
                    shutil.rmtree(store, ignore_errors=True)  # "empty" stays empty in every round
                result.expected_events = result.events + args.fresh_events * (1 if result.events == 0 else round_ + 1)
                env = {
                    "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                    "CLICKHOUSE_URL": f"chdb://{store}",
                    "USAGE_EVENTS_TOPIC": topic,
                    "USAGE_DLQ_TOPIC": f"{topic}.dlq",
                    "USAGE_CONSUMER_GROUP": f"bench-{tag}-{label}-{round_}",
                    "USAGE_PIPELINE_HOME": str(work / f"home-{label}"),
                    "USAGE_LOG_LEVEL": "warning",
                }
                _progress(f"round {round_ + 1}, size {label}: a worker drains {args.fresh_events:,} fresh events ...")
                with WorkerProcess(env, log_path=work / f"worker-{label}.log") as worker:
                    _drain(worker, messages, result, label)
                    result.peak_rss_mb = max(result.peak_rss_mb, _peak_rss_mb(worker.pid))
                    if last:
                        _progress(f"size {label}: {args.requests} requests of each billing query through /report ...")
                        for name, params in BILLING_QUERIES:
                            result.latencies[name] = _time_get(worker, "/report", params, args.requests)
                        for name, params in DASHBOARD_VIEWS:
                            result.dashboard[name] = _time_get(worker, "/dashboard/data", params, max(10, args.requests // 5))
                        result.reported_events = sum(int(r["events"]) for r in worker.report("project"))

        for result in results:
            label = size_label(result.events)
            _progress(f"size {label}: in process: {args.profile_chunks} chunks, then query and panel SQL ...")
            result.profile = _run_phase(
                "profile",
                {**_phase_args(args, settings, stores[result.events], result.events, now),
                 "chunks": args.profile_chunks, "messages_per_chunk": settings.chunk_max_messages,
                 "events_per_message": EVENTS_PER_MESSAGE, "billing_queries": BILLING_QUERIES,
                 "dashboard_views": DASHBOARD_VIEWS, "sql_requests": max(10, args.requests // 2)},
            )
            shutil.rmtree(stores[result.events], ignore_errors=True)
            print_size(result)

        print_summary(results, baseline, args.random_ids, args.fresh_events, args.rounds)
        return 0
    finally:
        if broker is not None:
            broker.down()
        shutil.rmtree(work, ignore_errors=True)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _phase_args(args: argparse.Namespace, settings: Any, store: Path, events: int, now: datetime) -> dict[str, Any]:
    return {
        "store": str(store), "window_seconds": settings.window_seconds, "events": events,
        "now": now.isoformat(), "days": args.days, "events_per_message": args.history_events_per_message,
        "partitions": settings.topic_partitions, "random_ids": args.random_ids, "optimize": not args.no_optimize,
    }


async def _publish_fresh(bootstrap: str, topic: str, count: int, now: datetime, random_ids: bool, seed: int) -> int:
    """The fresh traffic, in slices large enough that most messages hold 500 events."""
    events = iter_fresh_events(count, now=now, seed=seed, random_ids=random_ids)
    sent = 0
    async with KafkaPublisher(bootstrap, topic, max_events_per_message=EVENTS_PER_MESSAGE) as publisher:
        while batch := list(itertools.islice(events, 50_000)):
            sent += (await publisher.publish(batch)).messages
    return sent


def _run_phase(phase: str, args: dict[str, Any]) -> dict[str, Any]:
    """A phase of store_phases.py in a child process (it opens the store; we may not)."""
    completed = subprocess.run(
        [sys.executable, str(PHASES), phase, json.dumps(args)], stdout=subprocess.PIPE, check=True, text=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _drain(worker: WorkerProcess, messages: int, result: SizeResult, label: str) -> None:
    """Events/s from the first chunk to the last, and the seconds of each chunk seen alone."""
    first = _wait_first_chunk(worker)
    first_events = int(first["events_accepted"])
    cpu_first = _cpu_seconds(worker.pid)
    seen = {"chunks": 0, "events": first_events, "reported": time.monotonic()}

    def sample(stats: dict[str, Any]) -> None:
        # Between two polls exactly one chunk finished: its time and size are known exactly.
        if stats["chunks"] == seen["chunks"] + 1 and seen["chunks"] > 0:
            result.chunk_seconds.append(float(stats["last_chunk_seconds"]))
            result.chunk_events.append(int(stats["events_accepted"]) - seen["events"])
        seen["chunks"], seen["events"] = stats["chunks"], int(stats["events_accepted"])
        if time.monotonic() - seen["reported"] >= 5:
            seen["reported"] = time.monotonic()
            _progress(f"  size {label}: {stats['events_accepted']:,} events written, {stats['chunks']} chunks")

    stats = worker.wait_for_messages(messages, timeout=3600, interval=0.05, progress=sample)
    result.drains.append(
        # Timed by the worker's clock: from the end of its first chunk to the end of its last.
        Drain(
            int(stats["events_accepted"]) - first_events,
            stats["last_chunk_end"] - first["last_chunk_end"],
            _cpu_seconds(worker.pid) - cpu_first,
        )
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads (chDB's included): robust to a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _time_get(worker: WorkerProcess, path: str, params: dict[str, str], requests: int) -> Latency:
    """One cold request, then `requests` timed ones: from sending the request to the last byte
    of the answer (HTTP, query, JSON written by the worker). Decoding the JSON is the
    client's own work (13 ms for the 2.8 MB of 10k sessions) and is done outside the clock."""
    samples = []
    rows = 0
    for i in range(requests + 1):
        started = time.perf_counter()
        body = worker.fetch(path, **params)
        elapsed = (time.perf_counter() - started) * 1000
        if i == 0:
            answer = json.loads(body)
            first, rows = elapsed, len(answer) if isinstance(answer, list) else len(answer.get("panels", {}))
        else:
            samples.append(elapsed)
    return Latency(first, samples, rows)


if __name__ == "__main__":
    sys.exit(main())
