"""A real pipeline for one test: its own topics, consumer group, store and worker process.

Expected totals are computed here independently of the worker: tokens by plain sums,
cost by calling genai-prices' own `calc_price` per distinct event.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price

from producers import KafkaPublisher
from schemas import UsageTrackingEvent
from stream_app.worker.process import WorkerProcess

# Run a test on the embedded store and on the session's ClickHouse server (conftest.py):
# the test takes the `store_server` fixture and passes it to `Pipeline.fresh`.
STORE_KINDS = ("chdb", "server")
both_stores = pytest.mark.parametrize("store_kind", STORE_KINDS, indirect=True)

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
KEYS = {
    "project": ("project_id",),
    "agent": ("project_id", "agent_name"),
    "session": ("project_id", "session_id"),
    "model": ("provider", "model"),
}


@dataclass
class Pipeline:
    bootstrap: str
    events_topic: str
    dlq_topic: str
    group: str
    store_url: str
    home: Path

    @classmethod
    def fresh(cls, bootstrap: str, tmp_path: Path, server: str | None = None) -> Pipeline:
        """A pipeline on a fresh embedded store, or on a fresh database of `server` (a base URL)."""
        tag = uuid.uuid4().hex[:10]
        return cls(
            bootstrap=bootstrap,
            events_topic=f"it-{tag}.events",
            dlq_topic=f"it-{tag}.dlq",
            group=f"it-{tag}",
            store_url=f"{server}/test_{tag}" if server else f"chdb://{tmp_path / 'clickhouse'}",
            home=tmp_path / "home",
        )

    @property
    def database(self) -> str:
        from stream_app.sink.clickhouse import parse_clickhouse_url

        return parse_clickhouse_url(self.store_url).database

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "CLICKHOUSE_URL": self.store_url,
            "USAGE_EVENTS_TOPIC": self.events_topic,
            "USAGE_DLQ_TOPIC": self.dlq_topic,
            "USAGE_CONSUMER_GROUP": self.group,
            "USAGE_PIPELINE_HOME": str(self.home),
            "USAGE_CHUNK_WITHIN_SECONDS": "0.2",
            "USAGE_SINK_RETRY_INITIAL_SECONDS": "0.05",
            "USAGE_SINK_RETRY_MAX_SECONDS": "0.5",
            "USAGE_LOG_LEVEL": "info",
            **extra,
        }

    def worker(self, **extra_env: str) -> WorkerProcess:
        return WorkerProcess(self.env(**extra_env), log_path=self.home / f"worker-{uuid.uuid4().hex[:6]}.log")

    def publish(self, events: list[UsageTrackingEvent]) -> int:
        """Publish events in batches; returns the number of Kafka messages."""

        async def go() -> int:
            async with KafkaPublisher(self.bootstrap, self.events_topic) as publisher:
                return (await publisher.publish(events)).messages

        return asyncio.run(go())

    def publish_raw(self, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
        items = list(messages)

        async def go() -> None:
            async with KafkaPublisher(self.bootstrap, self.events_topic) as publisher:
                for key, value in items:
                    await publisher.publish_raw(value, key)

        asyncio.run(go())
        return len(items)

    def report_cli(self, group_by: str, *options: str) -> list[dict[str, Any]]:
        """`usage-pipeline report --format json`, as a user runs it (a separate process)."""
        env = {**os.environ, **self.env()}
        result = subprocess.run(
            [sys.executable, "-m", "stream_app", "report", "--group-by", group_by, "--format", "json", *options],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def dead_letters(self, expected: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Read the dead-letter topic from the start until `expected` records arrived."""
        from aiokafka import AIOKafkaConsumer

        async def go() -> list[dict[str, Any]]:
            consumer = AIOKafkaConsumer(
                self.dlq_topic,
                bootstrap_servers=self.bootstrap,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                group_id=None,
            )
            await consumer.start()
            records: list[dict[str, Any]] = []
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                while len(records) < expected and loop.time() < deadline:
                    batch = await consumer.getmany(timeout_ms=500)
                    for messages in batch.values():
                        records.extend(json.loads(m.value) for m in messages)
                # Anything beyond `expected` would be a duplicate or a stray: read a moment longer.
                batch = await consumer.getmany(timeout_ms=1000)
                for messages in batch.values():
                    records.extend(json.loads(m.value) for m in messages)
            finally:
                await consumer.stop()
            return records

        return asyncio.run(go())


def catalog_cost(event: UsageTrackingEvent) -> Decimal:
    """genai-prices' own answer for this event (0 for a model it does not know)."""
    u = event.usage
    try:
        return calc_price(
            CatalogUsage(
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cache_read_tokens=u.cache_read_tokens,
                cache_write_tokens=u.cache_write_tokens,
            ),
            model_ref=event.model,
            provider_id=event.provider,
            genai_request_timestamp=event.timestamp,
        ).total_price
    except LookupError:
        return Decimal(0)


def expected_report(events: Iterable[UsageTrackingEvent], group_by: str) -> dict[tuple, dict[str, Any]]:
    """Totals per group over distinct (project_id, event_id), computed without the pipeline.

    The first copy of a key (in the order given, which is the order sent) is the billed one.
    """
    distinct: dict[tuple[str, str], UsageTrackingEvent] = {}
    for e in events:
        distinct.setdefault((e.project_id, e.event_id), e)
    totals: dict[tuple, dict[str, Any]] = defaultdict(lambda: {"events": 0, "cost_usd": Decimal(0), **dict.fromkeys(TOKEN_FIELDS, 0)})
    for e in distinct.values():
        group = tuple(getattr(e, k) for k in KEYS[group_by])
        t = totals[group]
        t["events"] += 1
        for name in TOKEN_FIELDS:
            t[name] += getattr(e.usage, name)
        t["cost_usd"] += catalog_cost(e)
    return dict(totals)


def actual_report(records: list[dict[str, Any]], group_by: str) -> dict[tuple, dict[str, Any]]:
    """The report's records in the same shape, cost parsed back to an exact Decimal."""
    out = {}
    for r in records:
        group = tuple(r[k] for k in KEYS[group_by])
        assert group not in out, f"group {group} reported twice"
        out[group] = {"events": r["events"], "cost_usd": Decimal(r["cost_usd"]), **{n: r[n] for n in TOKEN_FIELDS}}
    return out


class BackgroundLoad:
    """Publishes events in batches from a thread until done, riding out broker outages.

    A batch that fails to publish is sent again whole: the pipeline bills each event_id
    once, so a re-send after an unclear failure is the correct producer behaviour.
    """

    def __init__(self, bootstrap: str, topic: str, events: list[UsageTrackingEvent], *, batch: int = 500, pause: float = 0.02) -> None:
        import threading

        self.bootstrap = bootstrap
        self.topic = topic
        self.events = events
        self.batch = batch
        self.pause = pause
        self.messages = 0
        self.published = 0
        self.failures = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="background-load", daemon=True)

    def start(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def join(self, timeout: float = 600.0) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"load still publishing after {timeout:.0f} s ({self.published} published)")
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            asyncio.run(self._publish_all())
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    async def _publish_all(self) -> None:
        from producers.errors import ProducerError

        publisher: KafkaPublisher | None = None
        start = 0
        while start < len(self.events):
            chunk = self.events[start : start + self.batch]
            try:
                if publisher is None:
                    publisher = KafkaPublisher(self.bootstrap, self.topic)
                    await publisher.start()
                result = await publisher.publish(chunk)
            except (ProducerError, OSError, asyncio.TimeoutError):
                self.failures += 1
                if publisher is not None:
                    try:
                        await publisher.stop()
                    except Exception:
                        pass
                    publisher = None
                await asyncio.sleep(0.5)
                continue
            self.messages += result.messages
            self.published += len(chunk)
            start += self.batch
            await asyncio.sleep(self.pause)
        if publisher is not None:
            await publisher.stop()


def read_store(store_url: str, sql: str) -> list[tuple]:
    """Run one query on the store; an embedded one is opened and closed here (no worker may hold it)."""
    from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url

    with ClickHouseSink(parse_clickhouse_url(store_url), window_seconds=60) as sink:
        return sink.query_rows(sql)


def wait_until_billed(pipeline: Pipeline, worker: WorkerProcess, distinct_events: int, timeout: float = 300.0) -> None:
    """Poll the worker's report until it bills `distinct_events` events."""
    import time

    deadline = time.monotonic() + timeout
    billed = -1
    while time.monotonic() < deadline:
        worker.raise_if_exited()
        billed = sum(r["events"] for r in worker.report("project"))
        if billed == distinct_events:
            return
        if billed > distinct_events:
            raise AssertionError(f"billed {billed} events, only {distinct_events} distinct were sent")
        time.sleep(0.5)
    raise AssertionError(f"billed {billed} of {distinct_events} events after {timeout:.0f} s:\n{worker.log_tail()}")
