"""What usage tracking costs the service that embeds it, per LLM call, and the sender's throughput.

    python benchmarks/emit_overhead.py [--calls 20000] [--events 100000] [--fake mock|http] [--profile]

Tracked calls are timed while the background sender really publishes their events to
Kafka (so GIL contention with it is included), and with the garbage collector ON: a
collection pause that tracking's allocations cause is part of what a service pays. Each
measurement is paired with its baseline in the same run, in alternating blocks (the
baseline block starts with the sender idle, so it does not absorb the sender's cost),
and the overhead printed as the difference of each percentile:

(a) a bare `track_llm_call` block (set_usage, event built and queued)  vs  an empty call,
    and vs pure-Python work of the block's median length: on a shared machine a call is
    preempted in proportion to its length, which the equal-length baseline cancels out
(b) an instrumented OpenAI client's `chat.completions.create`  vs  the same call on an
    uninstrumented client, both against a local fake API: `--fake mock` (default) answers
    in process through httpx's MockTransport with the bodies of
    tests/unit/producers/provider_fakes.py, so loopback jitter does not drown the
    difference; `--fake http` uses that module's HTTP server on 127.0.0.1.
then, with the collector off as before: `KafkaTransport.emit(event)` and `producers.emit(event)`
on ready-made events, and the sender's events/s from the first emit until Kafka
acknowledged the last event (idempotent producer, acks=all).

`--profile` adds a cProfile summary of (a) and (b): where the remaining microseconds go.
Uses KAFKA_BOOTSTRAP_SERVERS, or starts (and stops) a local broker. Targets (issue 10):
overhead p99 < 50 µs and p99.9 < 1 ms.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from producers import configure_usage_tracking, emit, flush_usage_tracking, reset_usage_tracking, track_llm_call
from producers.spool import EventSpool
from producers.transport import KafkaTransport
from stream_app.demo.traffic import demo_events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000, help="timed calls per tracked-call measurement")
    parser.add_argument("--events", type=int, default=100_000, help="events for the transport measurements")
    parser.add_argument("--queue-max-events", type=int, default=200_000,
                        help="in-memory queue bound; a burst larger than it spills to the spool")
    parser.add_argument("--fake", choices=("mock", "http"), default="mock", help="the fake OpenAI API for (b)")
    parser.add_argument("--profile", action="store_true", help="print where the time of (a) and (b) goes")
    parser.add_argument("--skip-transport", action="store_true", help="only (a) and (b)")
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
        _run(bootstrap, args, work)
    finally:
        if broker is not None:
            broker.down()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _run(bootstrap: str, args: argparse.Namespace, work: Path) -> None:
    from stream_app.broker.topics import ensure_topics_sync

    topic = f"bench-emit-{uuid.uuid4().hex[:8]}"
    ensure_topics_sync(bootstrap, {topic: 4})
    print(f"python {sys.version.split()[0]}, Kafka at {bootstrap}, topic {topic}, gc on for (a) and (b)\n")

    configure_usage_tracking(bootstrap_servers=bootstrap, topic=topic, source="bench", project_id="proj-bench",
                             spool_dir=work / "spool-calls", queue_max_events=args.queue_max_events)
    _measure_tracked_block(args.calls, args.profile)
    with _fake_openai_clients(args.fake) as (plain, instrumented):
        _measure_openai_call(plain, instrumented, args.calls, args.profile, args.fake)
    reset_usage_tracking(timeout=30)
    if not args.skip_transport:
        _measure_transport(bootstrap, topic, args.events, args.queue_max_events, work)


# -- (a) and (b): per-call overhead against a baseline in the same run ------------------------


def _measure_tracked_block(count: int, profile: bool) -> None:
    print("(a) bare track_llm_call block vs an empty call")
    baseline, measured = _paired(lambda: None, _one_tracked_block, count, block=5_000)
    _report_pair("empty call (baseline)", baseline, "track_llm_call block", measured)
    same_length = _work_of_length(_percentiles(measured)[0])
    baseline, measured = _paired(same_length, _one_tracked_block, count, block=5_000)
    _report_pair("same-length work (baseline)", baseline, "track_llm_call block", measured)
    if profile:
        _profile(_one_tracked_block, count, "(a) track_llm_call block")


def _work_of_length(median_us: float) -> Callable[[], None]:
    """A pure-Python loop whose median duration is about `median_us`."""
    rounds = [1]

    def work() -> None:
        total = 0
        for number in range(rounds[0]):
            total += number

    while _percentiles(_timed_calls(work, 2_000))[0] < median_us:
        rounds[0] = max(rounds[0] + 1, int(rounds[0] * 1.1))
    return work


def _one_tracked_block() -> None:
    with track_llm_call("bench", provider="openai", model="gpt-4o-mini") as call:
        call.set_usage(input_tokens=1200, output_tokens=300, cache_read_tokens=800)


def _measure_openai_call(plain: Any, instrumented: Any, count: int, profile: bool, fake: str) -> None:
    print(f"(b) OpenAI chat.completions.create against a local fake ({fake}), instrumented vs not")
    request = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    def call_plain() -> None:
        plain.chat.completions.create(**request)

    def call_instrumented() -> None:
        instrumented.chat.completions.create(**request)

    baseline, measured = _paired(call_plain, call_instrumented, count, block=500)
    _report_pair("uninstrumented call (baseline)", baseline, "instrumented call", measured)
    if profile:
        _profile(call_instrumented, min(count, 5_000), "(b) instrumented OpenAI call", only="producers/|urandom")


@contextmanager
def _fake_openai_clients(fake: str) -> Iterator[tuple[Any, Any]]:
    """Two OpenAI clients on one fake API: the second instrumented."""
    import openai

    from producers import instrument_openai

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fakes live in the test tree
    from tests.unit.producers.provider_fakes import (
        FakeProviderServer,
        Reply,
        openai_chat_completion,
        openai_chat_usage,
    )

    body = openai_chat_completion(openai_chat_usage(1200, 300, cached=800), model="gpt-4o-mini-2024-07-18")
    if fake == "mock":
        import httpx2

        def answer(request: Any) -> Any:
            return httpx2.Response(200, json=body, headers={"x-request-id": "req_fake"})

        def client() -> Any:
            http = httpx2.Client(transport=httpx2.MockTransport(answer))
            return openai.OpenAI(base_url="http://fake.invalid/v1", api_key="sk-bench", max_retries=0,
                                 http_client=http)

        yield client(), instrument_openai(client())
        return

    with FakeProviderServer() as server:
        # Every request gets the same completion, however many are made.
        server.replies.get_nowait = lambda: Reply(json_body=body)  # type: ignore[method-assign]
        base = f"{server.base_url}/v1"
        yield (openai.OpenAI(base_url=base, api_key="sk-bench", max_retries=0),
               instrument_openai(openai.OpenAI(base_url=base, api_key="sk-bench", max_retries=0)))


def _paired(
    baseline: Callable[[], None], measured: Callable[[], None], count: int, block: int
) -> tuple[list[int], list[int]]:
    """Time both calls `count` times each, in alternating blocks, after a warm-up; gc stays on.

    Also prints CPU time per call (this thread's, and the sender thread's per tracked call):
    a mean that a busy shared machine disturbs far less than wall-clock percentiles.
    """
    for _ in range(min(count // 10, 1_000)):
        baseline()
        measured()
    flush_usage_tracking(60)
    sender_clock = _sender_cpu_clock()
    sender_started = time.clock_gettime_ns(sender_clock) if sender_clock is not None else 0
    base: list[int] = []
    meas: list[int] = []
    cpu = [0, 0]
    for start in range(0, count, block):
        size = min(block, count - start)
        flush_usage_tracking(60)  # the sender settles what the last block queued: untimed
        began = time.thread_time_ns()
        base.extend(_timed_calls(baseline, size, gc_off=False))
        middle = time.thread_time_ns()
        meas.extend(_timed_calls(measured, size, gc_off=False))
        cpu[0] += middle - began
        cpu[1] += time.thread_time_ns() - middle
    flush_usage_tracking(60)
    sender = (time.clock_gettime_ns(sender_clock) - sender_started) / count / 1000 if sender_clock is not None else 0
    print(f"{'  CPU per call (mean, this thread)':<42} baseline {cpu[0] / count / 1000:7.2f} µs   measured "
          f"{cpu[1] / count / 1000:7.2f} µs   + sender thread {sender:6.2f} µs per call   => overhead "
          f"{(cpu[1] - cpu[0]) / count / 1000 + sender:6.2f} µs")
    return base, meas


def _sender_cpu_clock() -> int | None:
    import threading

    for thread in threading.enumerate():
        if thread.name == "usage-tracking-sender" and thread.ident is not None:
            return time.pthread_getcpuclockid(thread.ident)
    return None


def _report_pair(base_label: str, base: list[int], label: str, measured: list[int]) -> None:
    _report(base_label, base)
    _report(label, measured)
    b, m = _percentiles(base), _percentiles(measured)
    print(f"{'  => overhead (difference per percentile)':<42} p50 {m[0] - b[0]:7.2f} µs   p99 {m[1] - b[1]:7.2f} µs"
          f"   p99.9 {m[2] - b[2]:8.2f} µs   mean {statistics.fmean(measured) / 1000 - statistics.fmean(base) / 1000:6.2f} µs\n")


def _profile(call: Callable[[], None], count: int, label: str, only: str = "") -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        call()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    stats.print_stats(*([only] if only else []), 14)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    scope = f", functions matching {only!r}" if only else ""
    print(f"profile of {label} ({count:,} calls{scope}; cProfile inflates small functions):")
    for line in lines[lines.index(next(l for l in lines if "ncalls" in l)):]:
        print("   " + line.replace(str(Path.cwd()) + "/", ""))
    print()


# -- the transport alone, on ready-made events ----------------------------------------------


def _measure_transport(bootstrap: str, topic: str, count: int, queue_max: int, work: Path) -> None:
    print(f"transport on {count:,} ready-made events (gc off while timing)")
    events = demo_events(count, now=datetime.now(timezone.utc), seed=5)
    _report("timer alone (empty call)", _timed_calls(lambda: None, count))

    transport = KafkaTransport(bootstrap, topic, EventSpool(work / "spool-1"), queue_max_events=queue_max)
    transport.flush(30)  # connect first: the sender is running, as in a live service
    iterator = iter(events)
    started = time.perf_counter()
    _report("KafkaTransport.emit(event)", _timed_calls(lambda: transport.emit(next(iterator)), count))
    _report_sender(transport, count, started)
    transport.close()

    configure_usage_tracking(bootstrap_servers=bootstrap, topic=topic, source="bench", project_id="proj-bench",
                             spool_dir=work / "spool-2", queue_max_events=queue_max)
    iterator = iter(events)
    _report("producers.emit(event)", _timed_calls(lambda: emit(next(iterator)), count))
    reset_usage_tracking(timeout=30)


def _timed_calls(call: Callable[[], None], count: int, gc_off: bool = True) -> list[int]:
    samples = [0] * count
    clock = time.perf_counter_ns
    if gc_off:
        gc.disable()
    try:
        for index in range(count):
            begin = clock()
            call()
            samples[index] = clock() - begin
    finally:
        gc.enable()
    return samples


def _percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    ordered = sorted(samples_ns)

    def pct(p: float) -> float:
        return ordered[min(int(len(ordered) * p), len(ordered) - 1)] / 1000

    return pct(0.50), pct(0.99), pct(0.999)


def _report(label: str, samples_ns: list[int]) -> None:
    p50, p99, p999 = _percentiles(samples_ns)
    print(f"{label:<42} p50 {p50:7.2f} µs   p99 {p99:7.2f} µs   p99.9 {p999:8.2f} µs   "
          f"max {max(samples_ns) / 1000:9.1f} µs   mean {statistics.fmean(samples_ns) / 1000:6.2f} µs"
          f"   n={len(samples_ns):,}")


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
          f"dropped {stats.dropped})\n")


if __name__ == "__main__":
    sys.exit(main())
