"""Worker throughput, latency and memory, against a bare-consumer baseline in the same run.

    python benchmarks/worker_throughput.py [--events 100000] [--live-rate 2000 --live-seconds 10]

1. Publishes `--events` demo events (batched, as producers do) to a fresh topic.
2. Baseline: a bare aiokafka consumer reads the whole topic and `json.loads` every message.
3. Backlog: a real worker (own process, fresh embedded ClickHouse store) drains the topic;
   events/s from the end of its first chunk to the end of its last (its own clock), the
   share of that time it spent in chunks, and its peak RSS.
4. Live: events published at `--live-rate`/s stamped at send time; latency percentiles
   from event timestamp to the worker's ingest time (chunk start), read from ClickHouse.

Uses KAFKA_BOOTSTRAP_SERVERS, or starts (and stops) a local broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from producers import KafkaPublisher
from stream_app.demo.traffic import demo_events
from stream_app.settings import load_settings
from bench_kafka import BenchmarkKafka  # the script's own folder is on sys.path
from stream_app.worker.process import WorkerProcess


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--live-rate", type=int, default=2_000, help="events/s in the latency phase")
    parser.add_argument("--live-seconds", type=int, default=10)
    args = parser.parse_args()

    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="usage-bench-"))
    broker = BenchmarkKafka(settings, work)
    try:
        bootstrap = broker.up()
        tag = uuid.uuid4().hex[:8]
        topic = f"bench-{tag}"
        from stream_app.broker.topics import ensure_topics_sync

        ensure_topics_sync(bootstrap, {topic: settings.topic_partitions, f"{topic}.dlq": settings.topic_partitions})

        print(f"publishing {args.events:,} events to {topic} ...", file=sys.stderr)
        events = demo_events(args.events, now=datetime.now(timezone.utc), seed=11)
        t0 = time.perf_counter()
        messages = asyncio.run(_publish(bootstrap, topic, events))
        publish_s = time.perf_counter() - t0
        print(f"  {messages:,} messages in {publish_s:.1f} s ({args.events / publish_s:,.0f} events/s published)", file=sys.stderr)

        baseline_s = asyncio.run(_bare_consume(bootstrap, topic, messages))
        store = work / "clickhouse"
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CLICKHOUSE_URL": f"chdb://{store}",
            "USAGE_EVENTS_TOPIC": topic,
            "USAGE_DLQ_TOPIC": f"{topic}.dlq",
            "USAGE_CONSUMER_GROUP": f"bench-{tag}",
            "USAGE_PIPELINE_HOME": str(work / "home"),
            "USAGE_LOG_LEVEL": "warning",
        }
        print("running a worker on the backlog ...", file=sys.stderr)
        with WorkerProcess(env, log_path=work / "worker.log") as worker:
            first = _wait_first_chunk(worker)
            # Polled slowly (each poll is a request the worker answers); the drain is timed
            # by the worker's own clock, from the end of its first chunk to the end of its last.
            stats = worker.wait_for_messages(messages, timeout=1800, interval=0.5)
            drain_s = stats["last_chunk_end"] - first["last_chunk_end"]
            drained = stats["events_accepted"] - first["events_accepted"]
            busy = (stats["chunk_seconds"] - first["chunk_seconds"]) / drain_s
            live_events = args.live_rate * args.live_seconds
            print(f"live phase: {args.live_rate:,} events/s for {args.live_seconds} s ...", file=sys.stderr)
            live_messages = asyncio.run(_publish_live(bootstrap, topic, args.live_rate, args.live_seconds))
            worker.wait_for_messages(messages + live_messages, timeout=600, interval=0.2)
            peak_rss_mb = _peak_rss_mb(worker.pid)
        latency = _latency_ms(store, live_events)

        print()
        print(f"events: {args.events:,} in {messages:,} Kafka messages ({args.events // max(messages, 1)} events/message)")
        print(f"baseline  bare aiokafka + json.loads : {args.events / baseline_s:>10,.0f} events/s")
        print(
            f"pipeline  worker (decode, price, windows, ClickHouse) : {drained / drain_s:>10,.0f} events/s "
            f"({drained:,} events after its first chunk, in {drain_s:.1f} s by the worker's clock)"
        )
        print(
            f"worker busy {busy:.0%} of the drain (time in chunks, decode to written; the rest it waited for messages)"
        )
        print(f"worker peak RSS: {peak_rss_mb:,.0f} MB")
        print(
            f"live latency at {args.live_rate:,} events/s (event timestamp -> ingest): "
            f"p50 {latency[0]:,.0f} ms, p95 {latency[1]:,.0f} ms, p99 {latency[2]:,.0f} ms, max {latency[3]:,.0f} ms"
        )
        return 0
    finally:
        if broker is not None:
            broker.down()
        shutil.rmtree(work, ignore_errors=True)


async def _publish(bootstrap: str, topic: str, events: list) -> int:
    async with KafkaPublisher(bootstrap, topic) as publisher:
        sent = 0
        for start in range(0, len(events), 10_000):
            sent += (await publisher.publish(events[start : start + 10_000])).messages
        return sent


async def _publish_live(bootstrap: str, topic: str, rate: int, seconds: int) -> int:
    """Publish `rate` events each second, in 10 ticks a second, stamped when sent."""
    sent = 0
    per_tick = max(1, rate // 10)
    async with KafkaPublisher(bootstrap, topic, linger_ms=5) as publisher:
        start = time.perf_counter()
        for tick in range(seconds * 10):
            batch = demo_events(per_tick, now=datetime.now(timezone.utc), seed=1_000_000 + tick, spread=_no_spread())
            sent += (await publisher.publish(batch)).messages
            delay = start + (tick + 1) / 10 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    return sent


def _no_spread():
    from datetime import timedelta

    return timedelta(milliseconds=1)


async def _bare_consume(bootstrap: str, topic: str, messages: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None, enable_auto_commit=False)
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < messages:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if started is None and batch:
                started = time.perf_counter()
            for records in batch.values():
                for record in records:
                    json.loads(record.value)
                    seen += 1
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()


def _wait_first_chunk(worker: WorkerProcess) -> dict:
    """The worker's stats once its first chunk is written (start-up is not throughput)."""
    while True:
        stats = worker.stats()
        if stats["chunks"] > 0:
            return stats
        time.sleep(0.05)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _latency_ms(store: Path, live_events: int) -> tuple[float, float, float, float]:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{store}")
    try:
        rows = client.query(
            "SELECT quantilesExact(0.5, 0.95, 0.99)(ms), max(ms) FROM ("
            " SELECT dateDiff('millisecond', timestamp, ingested_at) AS ms FROM usage.usage_events FINAL"
            f" ORDER BY timestamp DESC LIMIT {int(live_events)})"
        ).result_rows
    finally:
        client.close()
    (p50, p95, p99), worst = rows[0]
    return float(p50), float(p95), float(p99), float(worst)


if __name__ == "__main__":
    sys.exit(main())
