"""Fault drill: the pipeline's worst day under load, then a check that the bill is exact.

    python scripts/fault_drill.py [--events 200000] [--kills 5] [--outage-seconds 30]

Starts its own Kafka broker (it restarts it), publishes events from a background
producer that rides out outages, and meanwhile:
  - kills the worker with SIGKILL `--kills` times at random moments, restarting it;
  - restarts the Kafka broker once;
  - cuts ClickHouse for `--outage-seconds` (faults injected at the sink's client boundary:
    every statement fails until the time is up) in one worker generation.
Then a last worker drains the topic, and the billed totals are compared with totals
computed independently from the events sent (tokens summed, cost by genai-prices'
`calc_price`). Prints what it did and both sets of totals; exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream_app.broker.local import LocalKafkaBroker, find_free_port  # noqa: E402
from tests.factories import varied_events  # noqa: E402
from tests.integration.pipeline_harness import (  # noqa: E402
    BackgroundLoad,
    Pipeline,
    actual_report,
    expected_report,
    wait_until_billed,
)

STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--outage-seconds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--publish-seconds", type=float, default=90.0, help="spread publishing over this long, so faults hit live traffic"
    )
    args = parser.parse_args()
    # A stopped broker makes aiokafka log every reconnect attempt; the drill reports outcomes instead.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="usage-drill-"))
    broker = LocalKafkaBroker(work / "kafka", port=find_free_port(), progress=lambda m: say(f"kafka: {m}"))
    worker = None
    try:
        bootstrap = broker.up()
        pipeline = Pipeline.fresh(bootstrap, work)
        say(f"generating {args.events:,} events ...")
        events = varied_events(args.events, seed=args.seed, spread_seconds=600)
        batch = 1_000
        pause = args.publish_seconds / max(1, len(events) / batch)
        load = BackgroundLoad(bootstrap, pipeline.events_topic, events, batch=batch, pause=pause).start()
        say(f"producer publishing to {pipeline.events_topic} in the background")

        plan = ["kill"] * args.kills + ["broker-restart", "clickhouse-outage"]
        rng.shuffle(plan)
        for step in plan:
            if step == "clickhouse-outage":
                worker = pipeline.worker(USAGE_SINK_FAULT_PLAN=f"outage_seconds={args.outage_seconds}").start()
                say(f"worker pid {worker.pid} started with ClickHouse cut for {args.outage_seconds} s from its first write")
                time.sleep(args.outage_seconds + 5)
                stats = worker.stats()
                say(f"  outage over: {stats['sink_retries']} failed writes retried, then {stats['events_accepted']:,} events written")
                worker.stop()
                say("  worker stopped (SIGTERM)")
                continue
            worker = pipeline.worker().start()
            say(f"worker pid {worker.pid} started")
            time.sleep(rng.uniform(2.0, 6.0))
            if step == "kill":
                stats = worker.stats()
                worker.kill()
                say(
                    f"  SIGKILL worker pid {worker.pid} after it wrote {stats['events_accepted']:,} events "
                    f"(published so far: {load.published:,})"
                )
            else:
                broker.down()
                say("  Kafka broker stopped")
                time.sleep(5)
                broker.up()
                say(f"  Kafka broker restarted at {bootstrap}; worker pid {worker.pid} reconnecting")
                time.sleep(5)
                stats = worker.stats()
                worker.stop()
                say(f"  worker stopped (SIGTERM) after it wrote {stats['events_accepted']:,} events")

        load.join(timeout=1_800)
        say(f"producer done: {load.published:,} events in {load.messages:,} messages, {load.failures} publish retries")
        worker = pipeline.worker().start()
        say(f"final worker pid {worker.pid} draining ...")
        wait_until_billed(pipeline, worker, len({e.event_id for e in events}), timeout=1_800)
        worker.stop()
        worker = None
        say("drained; comparing totals")
        return compare(pipeline, events)
    finally:
        if worker is not None:
            worker.kill()
        broker.down()


def compare(pipeline: Pipeline, events: list) -> int:
    failed = False
    for group_by in ("project", "model"):
        want = expected_report(events, group_by)
        got = actual_report(pipeline.report_cli(group_by), group_by)
        print(f"\nby {group_by}: expected (computed from what was sent) vs billed")
        for group in sorted(set(want) | set(got), key=str):
            w, g = want.get(group), got.get(group)
            same = w == g
            failed |= not same
            label = "/".join(str(k) for k in group)
            print(
                f"  {label:<40} events {w and w['events']!s:>7} vs {g and g['events']!s:>7}   "
                f"cost {w and w['cost_usd']!s:>18} vs {g and g['cost_usd']!s:>18}   {'OK' if same else 'DIFFERENT'}"
            )
    total_want = sum(v["cost_usd"] for v in expected_report(events, "project").values())
    total_got = sum(v["cost_usd"] for v in actual_report(pipeline.report_cli("project"), "project").values())
    print(f"\ntotal: expected {total_want} USD, billed {total_got} USD: {'EXACT' if total_want == total_got and not failed else 'MISMATCH'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
