"""`usage-pipeline demo`: the whole pipeline on embedded defaults, with a billing summary.

Brings up a local Kafka broker unless one is configured, runs a worker on a fresh
embedded ClickHouse store, publishes traffic from several simulated services (with a few
malformed messages and some producer re-sends), waits until the worker has taken
everything, prints the bill and checks it against what was emitted. It stops everything
it started, also when it fails or is interrupted.

With --workers N > 1, N workers of one consumer group share the work (the topic gets at
least 2N partitions) and one ClickHouse server: a local one the demo starts and stops,
unless CLICKHOUSE_URL names a server. Progress shows each worker's partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from schemas import UsageTrackingEvent
from stream_app.errors import ConfigurationError, PipelineError
from stream_app.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on embedded defaults and print a billing summary",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=20_000, help="events to emit (default 20000)")
    parser.add_argument("--resend", type=int, default=500, help="events to publish twice, as a retrying producer would")
    parser.add_argument("--seed", type=int, default=7, help="traffic seed (same seed, same traffic)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="stream workers in one consumer group (default 1); with N > 1 they share a local "
        "ClickHouse server the demo starts, unless CLICKHOUSE_URL names a server",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="after the bill, keep the workers up and serve the dashboard (its URL is printed) until Ctrl-C",
    )
    parser.set_defaults(handler=run)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Emitted:
    """What the demo published, and what billing must therefore say."""

    events: list[UsageTrackingEvent] = field(default_factory=list)
    messages: int = 0
    resent: int = 0
    malformed_messages: int = 0


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from stream_app.core.pricing import CatalogPricer, configure_default_pricer
    from stream_app.demo.fleet import WorkerFleet, demo_partitions, store_server_url
    from stream_app.sink.clickhouse import parse_clickhouse_url

    if args.workers < 1:
        raise ConfigurationError(f"--workers {args.workers}: run at least one worker")
    # The check prices what was emitted exactly as the worker will, price file included.
    configure_default_pricer(CatalogPricer.from_settings(settings))
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    with ExitStack() as cleanup:
        _stop_on_sigterm(cleanup)
        bootstrap = _broker(settings, cleanup)
        configured = settings.resolved_clickhouse_url if settings.clickhouse_url else None
        if args.workers > 1:
            store_url = store_server_url(configured, settings.home / "demo-clickhouse-server", cleanup, say)
        else:
            store_url = configured or _fresh_demo_store(settings)
        events_topic = f"{settings.events_topic}.demo-{run_id}"
        partitions = demo_partitions(args.workers, settings.topic_partitions)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CLICKHOUSE_URL": store_url,
            "USAGE_EVENTS_TOPIC": events_topic,
            "USAGE_DLQ_TOPIC": f"{events_topic}.dlq",
            "USAGE_TOPIC_PARTITIONS": str(partitions),
            "USAGE_CONSUMER_GROUP": f"usage-pipeline-demo-{run_id}",
            "USAGE_LOG_LEVEL": "warning",
            "USAGE_PIPELINE_HOME": str(settings.home),
        }
        say(f"[demo] ClickHouse: {parse_clickhouse_url(store_url).display}")
        say(f"[demo] starting {args.workers} stream worker(s); topic {events_topic} ({partitions} partitions) ...")
        fleet = WorkerFleet(env, args.workers, settings.home)
        fleet.start(cleanup, say)

        emitted = asyncio.run(
            _emit_traffic(bootstrap, events_topic, args.events, args.resend, args.seed, settings.kafka_security)
        )
        say(
            f"[demo] emitted {len(emitted.events):,} events + {emitted.resent:,} re-sends in "
            f"{emitted.messages:,} Kafka messages, and {emitted.malformed_messages} malformed messages"
        )
        started = time.monotonic()
        stats = fleet.wait_for_messages(
            emitted.messages, partitions=partitions, timeout=600, progress=_progress_printer(started)
        )
        elapsed = time.monotonic() - started
        say("")
        by_project = fleet.report("project")
        by_model = fleet.report("model")
        if args.workers > 1 and not configured:
            data = settings.home / "demo-clickhouse-server" / "data"
            hint = f"usage-pipeline clickhouse up --data-dir {data}, then CLICKHOUSE_URL=<its URL> usage-pipeline report"
        else:
            hint = f"CLICKHOUSE_URL={store_url} usage-pipeline report --group-by agent"
        outcome = _print_summary(emitted, stats, by_project, by_model, elapsed, store_url, hint)
        if args.serve:
            _serve_dashboard(fleet.workers[0].url, settings)
        return outcome


def _serve_dashboard(worker_url: str, settings: PipelineSettings) -> None:
    """Keep the workers, and so their `/dashboard`, up until Ctrl-C or SIGTERM."""
    auth = " (send Authorization: Bearer $USAGE_ADMIN_TOKEN)" if settings.admin_token else ""
    print(f"Dashboard: {worker_url}/dashboard?range=1h{auth}", flush=True)
    say("[demo] serving the dashboard until interrupted (Ctrl-C) ...")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("")


def _stop_on_sigterm(cleanup: ExitStack) -> None:
    """SIGTERM ends the demo like Ctrl-C, so the workers, server and broker it started stop too."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    cleanup.callback(signal.signal, signal.SIGTERM, previous)


def _broker(settings: PipelineSettings, cleanup: ExitStack) -> str:
    """The configured broker, a running local one, or a new local one stopped at the end."""
    from stream_app.broker.local import LocalKafkaBroker

    if settings.kafka_bootstrap_servers:
        say(f"[demo] Kafka: {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)")
        return settings.kafka_bootstrap_servers
    broker = LocalKafkaBroker(settings.kafka_home, progress=lambda m: say(f"[demo] kafka: {m}"))
    status = broker.status()
    if status.running and status.bootstrap:
        say(f"[demo] Kafka: local broker already running at {status.bootstrap}")
        return status.bootstrap
    say("[demo] no Kafka configured: starting a local Apache Kafka broker (KRaft, no Docker) ...")
    bootstrap = broker.up()
    cleanup.callback(_stop_broker, broker)
    say(f"[demo] Kafka: {bootstrap}")
    return bootstrap


def _stop_broker(broker: Any) -> None:
    say("[demo] stopping the local Kafka broker ...")
    broker.down()


def _fresh_demo_store(settings: PipelineSettings) -> str:
    path = settings.home / "demo-clickhouse"
    shutil.rmtree(path, ignore_errors=True)
    return f"chdb://{path}"


async def _emit_traffic(bootstrap: str, topic: str, count: int, resend: int, seed: int, security: Any = None) -> Emitted:
    from producers import KafkaPublisher
    from stream_app.demo.traffic import SERVICES, demo_events, malformed_messages

    now = datetime.now(timezone.utc)
    events = demo_events(count, now=now, seed=seed)
    emitted = Emitted()
    async with KafkaPublisher(bootstrap, topic, security=security) as publisher:
        by_service: dict[str, list[UsageTrackingEvent]] = {s.name: [] for s in SERVICES}
        for event in events:
            by_service[event.source].append(event)

        async def service_loop(name: str, service_events: list[UsageTrackingEvent]) -> None:
            # Each simulated service publishes in bursts, as an SDK's background sender does.
            for start in range(0, len(service_events), 250):
                result = await publisher.publish(service_events[start : start + 250])
                emitted.messages += result.messages
                emitted.events.extend(service_events[start : start + 250])
            say(f"[demo]   {name}: {len(service_events):,} events published")

        await asyncio.gather(*(service_loop(n, evs) for n, evs in by_service.items()))

        # A producer that timed out and retried: the same event ids again. Billed once.
        resent = events[:resend]
        if resent:
            result = await publisher.publish(resent)
            emitted.messages += result.messages
            emitted.resent = len(resent)

        template = events[0]
        first, second = (
            e.model_copy(update={"project_id": template.project_id, "source": template.source})
            for e in demo_events(2, now=now, seed=seed + 1)
        )
        for key, value in malformed_messages(template, (first, second)):
            await publisher.publish_raw(value, key)
            emitted.messages += 1
            emitted.malformed_messages += 1
        emitted.events.extend((first, second))
    return emitted


def _progress_printer(started: float) -> Any:
    from stream_app.demo.fleet import progress_line

    last = {"at": 0.0}

    def show(stats: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        if now - last["at"] < 1.0:
            return
        last["at"] = now
        sys.stderr.write("\r" + progress_line(stats, now - started) + "   ")
        sys.stderr.flush()

    return show


def expected_totals(events: Iterable[UsageTrackingEvent], key: str) -> dict[tuple, dict[str, Any]]:
    """What billing must say, computed from the emitted events themselves (each id once)."""
    from stream_app.core.pricing import price_event

    unique = {(e.project_id, e.event_id): e for e in events}
    totals: dict[tuple, Counter] = {}
    costs: dict[tuple, Decimal] = {}
    for e in unique.values():
        group = (e.project_id,) if key == "project" else (e.provider, e.model)
        t = totals.setdefault(group, Counter())
        t["events"] += 1
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
            t[name] += getattr(e.usage, name)
        costs[group] = costs.get(group, Decimal(0)) + price_event(e).cost_usd
    return {g: {**dict(t), "cost_usd": costs[g]} for g, t in totals.items()}


def _matches(records: list[dict[str, Any]], expected: dict[tuple, dict[str, Any]], key_fields: tuple[str, ...]) -> list[str]:
    problems = []
    seen = set()
    for record in records:
        group = tuple(record[k] for k in key_fields)
        seen.add(group)
        want = expected.get(group)
        if want is None:
            problems.append(f"{group}: billed but never emitted")
            continue
        for name, value in want.items():
            got = Decimal(record[name]) if name == "cost_usd" else record[name]
            if got != value:
                problems.append(f"{group} {name}: billed {got}, emitted {value}")
    problems += [f"{g}: emitted but not billed" for g in expected if g not in seen]
    return problems


def _print_summary(
    emitted: Emitted,
    stats: dict[str, Any],
    by_project: list[dict[str, Any]],
    by_model: list[dict[str, Any]],
    elapsed: float,
    store_url: str,
    store_hint: str,
) -> int:
    from stream_app.cli.report_cmd import render_table
    from stream_app.sink.queries import ReportQuery

    print("Billing summary by project")
    print(render_table(by_project, list(ReportQuery("project").columns)))
    print("Billing summary by model")
    print(render_table(by_model, list(ReportQuery("model").columns)))
    dead = ", ".join(f"{reason} {n}" for reason, n in sorted(stats["dead_letters"].items())) or "none"
    print(f"Dead letters: {stats['dead_letters_total']} ({dead})")
    problems = _matches(by_project, expected_totals(emitted.events, "project"), ("project_id",))
    problems += _matches(by_model, expected_totals(emitted.events, "model"), ("provider", "model"))
    unique = len({(e.project_id, e.event_id) for e in emitted.events})
    print(
        f"Worker: {stats['events_accepted']:,} event rows written for {unique:,} distinct events "
        f"in {elapsed:.1f} s after publishing (~{stats['events_accepted'] / max(elapsed, 1e-6):,.0f} events/s)"
    )
    print(f"Stored in {store_url}; query it with: {store_hint}")
    if problems:
        print("CHECK FAILED: billed totals differ from what was emitted:")
        for problem in problems[:20]:
            print(f"  {problem}")
        return 1
    print(f"Check: billed totals equal the {unique:,} distinct events emitted, to the token and the cent: OK")
    return 0


__all__ = ["run", "register", "expected_totals", "PipelineError"]
