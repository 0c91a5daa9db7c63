"""Worker peak RSS against the number of distinct sessions and agents (issue 10, bounded memory).

    python benchmarks/worker_memory.py [--events 200000] [--identities 1000,100000]

For each identity count in turn (one run, same broker):
1. A real `usage-pipeline worker` process starts on a fresh embedded store (chdb://) and a
   fresh topic; its RSS once healthy and idle is the baseline.
2. `--events` demo events are published while it consumes, re-labelled so that they carry
   exactly that many distinct `session_id`s and `agent_name`s (event i: `agent-{i % n}`,
   `sess-{i % n}`); everything else is the demo traffic (same seed in every round).
3. When it has processed every message: its peak RSS (VmHWM), the seconds from the first
   publish to the last message processed, and the rows it stored per
   table, so the growth can be set against the window rows the store had to write.

Prints progress while it runs, then a table and the ratio of the peak RSS at the largest
identity count to the smallest (goal: within 10 %, i.e. <= 1.10). Uses
KAFKA_BOOTSTRAP_SERVERS, or starts (and stops) a local broker; stops every worker it
started and removes its work directory, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kafka import BenchmarkKafka  # noqa: E402

from worker_throughput import _peak_rss_mb, _publish  # noqa: E402

from stream_app.demo.traffic import demo_events  # noqa: E402
from stream_app.settings import load_settings  # noqa: E402
from stream_app.worker.process import WorkerProcess  # noqa: E402

PUBLISH_SLICE = 20_000


@dataclass(frozen=True)
class Round:
    identities: int
    events: int
    messages: int
    idle_rss_mb: float
    peak_rss_mb: float
    drain_s: float
    rows: dict[str, int]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--identities", default="1000,100000", help="comma-separated counts of distinct sessions and agents, one round each"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.identities.split(",")]

    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="usage-mem-bench-"))
    broker = BenchmarkKafka(settings, work)
    try:
        bootstrap = broker.up()
        rounds = [run_round(bootstrap, settings.topic_partitions, work, n, args.events) for n in counts]
        print_rounds(rounds)
        return 0
    finally:
        if broker is not None:
            broker.down()
        shutil.rmtree(work, ignore_errors=True)


def run_round(bootstrap: str, partitions: int, work: Path, identities: int, events: int) -> Round:
    """One worker, one fresh store and topic, `events` events over `identities` sessions and agents."""
    from stream_app.broker.topics import ensure_topics_sync

    tag = f"{identities}-{uuid.uuid4().hex[:6]}"
    topic = f"mem-bench-{tag}"
    ensure_topics_sync(bootstrap, {topic: partitions, f"{topic}.dlq": partitions})
    home = work / f"round-{tag}"
    store = home / "clickhouse"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CLICKHOUSE_URL": f"chdb://{store}",
        "USAGE_EVENTS_TOPIC": topic,
        "USAGE_DLQ_TOPIC": f"{topic}.dlq",
        "USAGE_CONSUMER_GROUP": f"mem-bench-{tag}",
        "USAGE_PIPELINE_HOME": str(home),
        "USAGE_LOG_LEVEL": "warning",
    }
    say(f"[{identities:,} sessions/agents] starting a worker on a fresh store ...")
    with WorkerProcess(env, log_path=home / "worker.log") as worker:
        time.sleep(2.0)  # consumer joined, nothing to do: the baseline
        idle = rss_mb(worker.pid)
        say(f"[{identities:,}] worker idle at {idle:,.0f} MB RSS; publishing {events:,} events ...")
        started = time.perf_counter()
        messages = 0
        for start in range(0, events, PUBLISH_SLICE):
            batch = relabelled(start, min(PUBLISH_SLICE, events - start), identities)
            messages += asyncio.run(_publish(bootstrap, topic, batch))
            say(f"[{identities:,}] published {start + len(batch):,} events; {progress_line(worker)}")
        last = [0.0]

        def report(stats: dict) -> None:
            if time.monotonic() - last[0] >= 3.0:
                last[0] = time.monotonic()
                say(f"[{identities:,}] draining: {progress_line(worker, stats)}")

        stats = worker.wait_for_messages(messages, timeout=600, progress=report, interval=0.25)
        drain_s = time.perf_counter() - started
        peak = _peak_rss_mb(worker.pid)
        say(f"[{identities:,}] done: {stats['events_accepted']:,} events in {drain_s:.1f} s, peak RSS {peak:,.0f} MB")
    rows = stored_rows(store)
    return Round(identities, events, messages, idle, peak, drain_s, rows)


def relabelled(start: int, count: int, identities: int) -> list:
    """Demo events `start`..`start+count`, carrying `identities` distinct sessions and agents between them."""
    batch = demo_events(count, now=datetime.now(timezone.utc), seed=start)
    out = []
    for offset, event in enumerate(batch):
        n = (start + offset) % identities
        agent = f"agent-{n:06d}"
        out.append(event.model_copy(update={"agent_name": agent, "session_id": f"sess-{n:06d}", "handoff_chain": [agent]}))
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def progress_line(worker: WorkerProcess, stats: dict | None = None) -> str:
    stats = stats or worker.stats()
    return (
        f"{stats['messages']:,} messages, {stats['events_accepted']:,} events, {stats['chunks']:,} chunks; "
        f"RSS {rss_mb(worker.pid):,.0f} MB (peak {_peak_rss_mb(worker.pid):,.0f})"
    )


def stored_rows(store: Path) -> dict[str, int]:
    """Rows stored per table of the store after the worker stopped, whatever its layout.

    The window rows are what the number of sessions and agents multiplies; the raw
    event rows are the same in every round.
    """
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{store}")
    try:
        return {
            name: int(rows)
            for name, rows in client.query(
                "SELECT name, total_rows FROM system.tables WHERE database = 'usage' "
                "AND startsWith(name, 'usage_') AND engine LIKE '%MergeTree' AND name != 'usage_rejections' ORDER BY name"
            ).result_rows
        }
    finally:
        client.close()


def print_rounds(rounds: list[Round]) -> None:
    tables = sorted({t for r in rounds for t in r.rows})
    print()
    print(f"{'sessions/agents':>16} {'events':>9} {'messages':>9} {'idle RSS':>9} {'peak RSS':>9} {'growth':>8} "
          f"{'seconds':>9} " + " ".join(f"{t:>18}" for t in tables))
    print(f"{'':>75}(rows stored per table)")
    for r in rounds:
        print(
            f"{r.identities:>16,} {r.events:>9,} {r.messages:>9,} {r.idle_rss_mb:>7,.0f}MB {r.peak_rss_mb:>7,.0f}MB "
            f"{r.peak_rss_mb - r.idle_rss_mb:>6,.0f}MB {r.drain_s:>9,.1f} "
            + " ".join(f"{r.rows.get(t, 0):>18,}" for t in tables)
        )
    if len(rounds) >= 2:
        small, large = rounds[0], rounds[-1]
        ratio = large.peak_rss_mb / small.peak_rss_mb
        verdict = "within" if ratio <= 1.10 else "NOT within"
        print(
            f"peak RSS at {large.identities:,} / at {small.identities:,} sessions/agents: {ratio:.2f} "
            f"({verdict} 10 %); growth above idle {large.peak_rss_mb - large.idle_rss_mb:,.0f} MB vs "
            f"{small.peak_rss_mb - small.idle_rss_mb:,.0f} MB"
        )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
