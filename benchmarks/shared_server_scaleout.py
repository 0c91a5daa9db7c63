"""One worker, then two, against ONE shared ClickHouse server, on the same messages, in one run.

    python benchmarks/shared_server_scaleout.py [--events 100000] [--partitions 8] [--projects 32]

1. Starts a local ClickHouse server (`usage-pipeline clickhouse up`, in a temporary home)
   and uses KAFKA_BOOTSTRAP_SERVERS or a local broker it starts (and stops).
2. Publishes `--events` demo events (batched, as producers do) spread over `--projects`
   projects, so that every partition carries some (the topic is keyed by project).
3. Phase 1: one worker (its own consumer group and database) drains the topic.
   Phase 2: two workers (a new group and database) drain the same messages.
   For each: distinct events per second from the first written chunk until the group has
   no lag, and where the CPU went meanwhile (broker, server, each worker; from
   /proc/<pid>/stat, in cores) beside what the whole machine did (/proc/stat).
Prints the figures and the two-vs-one ratio. Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from producers import KafkaPublisher
from stream_app.broker.topics import ensure_topics_sync
from stream_app.clickhouse_server import LocalClickHouseServer
from stream_app.demo.traffic import demo_events
from stream_app.settings import load_settings
from stream_app.worker.process import WorkerProcess

TICKS = os.sysconf("SC_CLK_TCK")


def process_ticks(pid: int | None) -> int:
    """utime + stime of a process (all its threads), in clock ticks; 0 if unknown."""
    if pid is None:
        return 0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--projects", type=int, default=32)
    args = parser.parse_args()

    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="usage-scaleout-"))
    broker = None
    server = LocalClickHouseServer(work / "clickhouse-server", progress=lambda m: print(f"  clickhouse: {m}", file=sys.stderr))
    try:
        bootstrap = settings.kafka_bootstrap_servers
        if not bootstrap:
            from stream_app.broker.local import LocalKafkaBroker

            broker = LocalKafkaBroker(work / "kafka", progress=lambda m: print(f"  kafka: {m}", file=sys.stderr))
            bootstrap = broker.up()
        server_url = server.up().rsplit("/", 1)[0]
        topic = f"scaleout-{uuid.uuid4().hex[:8]}"
        ensure_topics_sync(bootstrap, {topic: args.partitions, f"{topic}.dlq": args.partitions})
        events = [
            e.model_copy(update={"project_id": f"proj-{i % args.projects:03d}"})
            for i, e in enumerate(demo_events(args.events, now=datetime.now(timezone.utc), seed=13))
        ]
        print(f"publishing {len(events):,} events to {topic} ({args.partitions} partitions) ...", file=sys.stderr)
        messages = asyncio.run(_publish(bootstrap, topic, events))
        pids = {"broker": _state_pid(broker), "server": server.status().pid}
        results = []
        for workers in (1, 2):
            env = {
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "CLICKHOUSE_URL": f"{server_url}/bench_{workers}w",
                "USAGE_EVENTS_TOPIC": topic,
                "USAGE_DLQ_TOPIC": f"{topic}.dlq",
                "USAGE_TOPIC_PARTITIONS": str(args.partitions),
                "USAGE_CONSUMER_GROUP": f"{topic}-{workers}w",
                "USAGE_PIPELINE_HOME": str(work / f"home-{workers}"),
                "USAGE_LOG_LEVEL": "warning",
            }
            print(f"phase: {workers} worker(s) drain {messages:,} messages ...", file=sys.stderr)
            results.append(_drain(env, workers, messages, len(events), args.partitions, pids, work))
        _print(results, len(events), messages, args)
        return 0
    finally:
        server.down()
        if broker is not None:
            broker.down()
        shutil.rmtree(work, ignore_errors=True)


def _drain(env: dict, count: int, messages: int, events: int, partitions: int, pids: dict, work: Path) -> dict:
    fleet = [WorkerProcess(env, log_path=work / f"worker-{count}w-{i}.log") for i in range(count)]
    try:
        with ThreadPoolExecutor(count) as pool:  # join together, as a scaled-out deployment does
            list(pool.map(lambda w: w.start(), fleet))
        while sum(w.stats()["events_accepted"] for w in fleet) == 0:
            time.sleep(0.02)
        watched = {**pids, **{f"worker{i + 1}": w.pid for i, w in enumerate(fleet)}}
        first = time.perf_counter()
        cpu0 = {name: process_ticks(pid) for name, pid in watched.items()}
        busy0, total0 = machine_ticks()
        stats = [w.stats() for w in fleet]
        while True:
            stats = [w.stats() for w in fleet]
            owned = sorted(p for s in stats for p in s["partitions"])
            if sum(s["messages"] for s in stats) >= messages and owned == list(range(partitions)) and _lag(fleet) == 0:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - first
        busy1, total1 = machine_ticks()
        cores = {name: (process_ticks(pid) - cpu0[name]) / TICKS / seconds for name, pid in watched.items()}
        billed = sum(r["events"] for r in fleet[0].report("project"))
        machine = (busy1 - busy0) / max(total1 - total0, 1) * os.cpu_count()
        return {
            "workers": count, "seconds": seconds, "events_per_s": events / seconds, "billed": billed,
            "cores": cores, "machine_cores": machine, "per_worker": [s["events_accepted"] for s in stats],
        }
    finally:
        for worker in fleet:
            worker.stop()


def _lag(fleet: list[WorkerProcess]) -> int:
    import urllib.request

    total = 0
    for worker in fleet:
        with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as response:
            lines = response.read().decode().splitlines()
        total += sum(int(float(line.rsplit(" ", 1)[1])) for line in lines if line.startswith("usage_consumer_lag{"))
    return total


def _state_pid(broker: object | None) -> int | None:
    if broker is None:
        return None
    status = broker.status()  # type: ignore[attr-defined]
    return status.pid


async def _publish(bootstrap: str, topic: str, events: list) -> int:
    messages = 0
    async with KafkaPublisher(bootstrap, topic) as publisher:
        for start in range(0, len(events), 500):
            messages += (await publisher.publish(events[start : start + 500])).messages
    return messages


def _print(results: list[dict], events: int, messages: int, args: argparse.Namespace) -> None:
    print(f"\n{events:,} events in {messages:,} Kafka messages, {args.partitions} partitions, {args.projects} projects; "
          f"{os.cpu_count()} cores on this machine")
    print(f"{'workers':>7}  {'seconds':>7}  {'events/s':>9}  {'billed':>8}  cpu (cores) while draining")
    for r in results:
        cpu = ", ".join(f"{name} {value:.2f}" for name, value in r["cores"].items())
        print(f"{r['workers']:>7}  {r['seconds']:>7.1f}  {r['events_per_s']:>9,.0f}  {r['billed']:>8,}  "
              f"{cpu}; whole machine {r['machine_cores']:.2f}")
        print(f"{'':>7}  events written per worker: {', '.join(f'{n:,}' for n in r['per_worker'])}")
    one, two = results
    print(f"two workers vs one: {two['events_per_s'] / one['events_per_s']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
