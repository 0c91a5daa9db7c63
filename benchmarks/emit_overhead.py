"""Caller-side cost of tracking a call, and the background sender's throughput to a real broker.

    python benchmarks/emit_overhead.py [--events 100000] [--queue-max-events 200000]

Measured, each call timed on its own with perf_counter_ns while the sender thread really
publishes to Kafka in the background (so GIL contention with it is included):
1. `KafkaTransport.emit(event)`    — the transport's hot path (a deque append)
2. `producers.emit(event)`         — the public call: listeners, handler slot, transport
3. a whole `track_llm_call` block  — building and validating the event too (pydantic)
plus the timer's own cost (an empty timed call), and then the sender's events/s: from the
first emit until Kafka acknowledged the last event (idempotent producer, acks=all).

Uses KAFKA_BOOTSTRAP_SERVERS, or starts (and stops) a local broker. Target: emit p99
under 20 µs on the caller's thread.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from producers import configure_usage_tracking, emit, reset_usage_tracking, track_llm_call
from producers.spool import EventSpool
from producers.transport import KafkaTransport
from stream_app.demo.traffic import demo_events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--queue-max-events", type=int, default=200_000,
                        help="in-memory queue bound; a burst larger than it spills to the spool")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="emit-bench-"))
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    try:
        if not bootstrap:
            from stream_app.broker.local import LocalKafkaBroker, find_free_port

            broker = LocalKafkaBroker(work / "kafka", port=find_free_port(),
                                      progress=lambda m: print(f"  kafka: {m}", file=sys.stderr))
            bootstrap = broker.up()
        _run(bootstrap, args.events, args.queue_max_events, work)
    finally:
        if broker is not None:
            broker.down()
    return 0


def _run(bootstrap: str, count: int, queue_max: int, work: Path) -> None:
    from stream_app.broker.topics import ensure_topics_sync

    topic = f"bench-emit-{uuid.uuid4().hex[:8]}"
    ensure_topics_sync(bootstrap, {topic: 4})
    print(f"building {count:,} events ...", file=sys.stderr)
    events = demo_events(count, now=datetime.now(timezone.utc), seed=5)
    print(f"python {sys.version.split()[0]}, Kafka at {bootstrap}, topic {topic}, {count:,} events\n")

    timer = _timed_calls(lambda: None, count)
    _report("timer alone (empty call)", timer)

    transport = KafkaTransport(bootstrap, topic, EventSpool(work / "spool-1"), queue_max_events=queue_max)
    transport.flush(30)  # connect first: the sender is running, as in a live service
    iterator = iter(events)
    started = time.perf_counter()
    samples = _timed_calls(lambda: transport.emit(next(iterator)), count)
    _report("KafkaTransport.emit(event)", samples)
    _report_sender(transport, count, started)
    transport.close()

    configure_usage_tracking(bootstrap_servers=bootstrap, topic=topic, source="bench", project_id="proj-bench",
                             spool_dir=work / "spool-2", queue_max_events=queue_max)
    iterator = iter(events)
    _report("producers.emit(event)", _timed_calls(lambda: emit(next(iterator)), count))
    _report("track_llm_call block (builds the event)", _timed_calls(_one_tracked_call, min(count, 20_000)))
    reset_usage_tracking(timeout=30)


def _one_tracked_call() -> None:
    with track_llm_call("bench", provider="openai", model="gpt-4o-mini") as call:
        call.set_usage(input_tokens=1200, output_tokens=300, cache_read_tokens=800)


def _timed_calls(call: Callable[[], None], count: int) -> list[int]:
    samples = [0] * count
    clock = time.perf_counter_ns
    gc.disable()  # a collection pause is the host's, not emit's; reported apart below
    try:
        for index in range(count):
            begin = clock()
            call()
            samples[index] = clock() - begin
    finally:
        gc.enable()
    return samples


def _report(label: str, samples_ns: list[int]) -> None:
    ordered = sorted(samples_ns)

    def pct(p: float) -> float:
        return ordered[min(int(len(ordered) * p), len(ordered) - 1)] / 1000

    print(f"{label:<42} p50 {pct(0.50):7.2f} µs   p99 {pct(0.99):7.2f} µs   p99.9 {pct(0.999):8.2f} µs   "
          f"max {ordered[-1] / 1000:9.1f} µs   mean {statistics.fmean(ordered) / 1000:6.2f} µs   n={len(ordered):,}")


def _report_sender(transport: KafkaTransport, count: int, started: float) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        stats = transport.stats()
        if stats.delivered + stats.spooled >= count:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    stats = transport.stats()
    print(f"{'sender: emitted -> acknowledged by Kafka':<42} {stats.delivered:,} events in {elapsed:.2f} s = "
          f"{stats.delivered / elapsed:,.0f} events/s (spooled {stats.spooled}, overflows {stats.queue_overflows}, "
          f"dropped {stats.dropped})")


if __name__ == "__main__":
    sys.exit(main())
