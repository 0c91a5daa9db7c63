"""The Faust application: consume chunks, hand them to the core and the sink, dead-letter the rest.

Offsets are acked by `take_events` after the loop body returns, so the body returns only
once the chunk is in ClickHouse and its dead letters are delivered. It never raises:
Faust would ack a chunk whose body raised and commit past it (INFRA.md). A fatal
problem stops the process hard, without committing, so the chunk is redelivered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

import faust
from aiohttp import web as aiohttp_web

from stream_app.core.chunk_limits import ChunkLimits, consumer_buffer, held_bytes_bound
from stream_app.core.decode import MessageOrigin
from stream_app.settings import PipelineSettings
from stream_app.sink.clickhouse import ClickHouseSink
from stream_app.sink.queries import GROUP_KEYS, ReportQuery, parse_every
from stream_app.worker.chunk import ChunkProcessor, RetryPolicy
from stream_app.worker.metrics import WorkerMetrics, render_prometheus
from stream_app.worker.take import take_chunks
from stream_app.core.times import parse_time

log = logging.getLogger("stream_app.worker")

# Exit code when the worker stops itself without committing (e.g. cancelled mid-write).
EXIT_UNCOMMITTED = 75


def create_app(settings: PipelineSettings, bootstrap: str, sink: ClickHouseSink) -> faust.App:
    """A Faust app wired to the given broker and an already-open sink."""
    limits = ChunkLimits(settings.chunk_max_messages, settings.chunk_max_bytes)
    # Sized for a worker that owns every partition: the most any one worker can hold.
    buffer = consumer_buffer(limits, settings.topic_partitions)
    log.info(
        "chunks of at most %d messages / %.1f MiB; messages held at most %.0f MiB "
        "(queue %d messages, %d KiB per partition fetch)",
        limits.max_messages, limits.max_bytes / 2**20,
        held_bytes_bound(limits, buffer, settings.topic_partitions) / 2**20,
        buffer.stream_messages, buffer.partition_fetch_bytes // 1024,
    )
    app = faust.App(
        settings.consumer_group,
        broker=[f"kafka://{server.strip()}" for server in bootstrap.split(",")],
        store="memory://",
        autodiscover=False,
        datadir=str(settings.home / "faust"),
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=30.0,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        # Outages are ridden out inside the loop body; don't let the group evict us for it.
        broker_max_poll_interval=3600.0,
        producer_linger=0.02,
        producer_acks=-1,
        web_enabled=True,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        # What waits ahead of the chunk is bounded in bytes, not only in messages (a message
        # is up to 4 MiB): while ClickHouse is down the worker holds a few chunks' bytes at
        # most, however long the backlog (stream_app/core/chunk_limits.py).
        stream_buffer_maxsize=buffer.stream_messages,
        consumer_max_fetch_size=buffer.partition_fetch_bytes,
    )
    metrics = WorkerMetrics()
    # Set on SIGTERM/SIGINT (stream_app/cli/worker_cmd.py): a chunk whose write keeps
    # failing then gives up within a second instead of retrying on, and is not committed.
    stop = threading.Event()
    processor = ChunkProcessor(
        sink,
        metrics,
        window_seconds=settings.window_seconds,
        max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
        consumer_group=settings.consumer_group,
        decode_options={"denied_context_keys": settings.context_deny_key_set},
        retry=RetryPolicy(settings.sink_retry_initial_seconds, settings.sink_retry_max_seconds),
        stop=stop,
    )
    events_topic = app.topic(settings.events_topic, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw")
    dlq_topic = app.topic(settings.dlq_topic, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw")

    @app.agent(events_topic, name="usage-events")
    async def meter(stream: Any) -> None:
        async for chunk in take_chunks(stream, limits, within=settings.chunk_within_seconds):
            messages = [(event.message.value, _origin(event.message)) for event in chunk]
            try:
                outcome = await asyncio.to_thread(processor.process, messages)
                await _deliver_dead_letters(dlq_topic, outcome.dead_letters)
            except BaseException as exc:  # noqa: BLE001 - see module docstring
                _stop_without_commit(exc, len(messages))

    _install_pages(app, sink, metrics, settings.events_topic)
    app.usage_metrics = metrics  # type: ignore[attr-defined]
    app.usage_stop = stop  # type: ignore[attr-defined]
    app.usage_sink = sink  # type: ignore[attr-defined]
    return app


def _origin(message: Any) -> MessageOrigin:
    key = message.key
    if isinstance(key, str):
        key = key.encode()
    return MessageOrigin(message.topic, message.partition, message.offset, key)


async def _deliver_dead_letters(dlq_topic: Any, records: list[tuple[bytes, bytes]]) -> None:
    """Publish and await every dead letter; retried, because a lost dead letter is a lost event."""
    delay = 0.2
    pending = records
    while pending:
        futures = [await dlq_topic.send(key=key, value=value, force=True) for key, value in pending]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [rec for rec, res in zip(pending, results, strict=True) if isinstance(res, BaseException)]
        if failed:
            log.warning("%d dead letters not delivered; retrying in %.1f s", len(failed), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        pending = failed


def assigned_partitions(app: faust.App, topic: str) -> list[int]:
    """The partitions of `topic` this worker owns now ([] while the group rebalances)."""
    try:
        return sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == topic)
    except Exception:  # no consumer yet
        return []


async def consumer_lag(app: faust.App, topic: str) -> dict[int, int]:
    """Per assigned partition of `topic`: end offset minus the next offset to commit."""
    try:
        consumer = app.consumer
        partitions = [tp for tp in consumer.assignment() if tp.topic == topic]
        if not partitions:
            return {}
        ends = await consumer.highwaters(*partitions)
    except Exception:  # not assigned yet, or the broker is away: no figure rather than a wrong one
        return {}
    lag = {}
    for tp in partitions:
        # Faust records the offset of the last committed message, so the next is one more.
        committed = consumer._committed_offset.get(tp)  # noqa: SLF001 - no public accessor
        lag[tp.partition] = max(0, ends.get(tp, 0) - (committed + 1 if committed is not None else 0))
    return lag


def _stop_without_commit(exc: BaseException, held: int) -> None:
    log.critical(
        "stopping without committing: a chunk of %d messages was interrupted (%r); "
        "it will be redelivered to the next worker",
        held,
        exc,
    )
    logging.shutdown()
    os._exit(EXIT_UNCOMMITTED)


def _install_pages(app: faust.App, sink: ClickHouseSink, metrics: WorkerMetrics, topic: str) -> None:
    started = time.time()

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        retrying = sink.stats.retrying_since is not None
        return web.json({"status": "degraded" if retrying else "ok", "uptime_seconds": time.time() - started})

    def current() -> WorkerMetrics:
        # Failed writes are counted as they happen, also while a chunk is still being retried.
        metrics.sink_retries = sink.stats.write_failures
        return metrics

    @app.page("/stats")
    async def stats(web: Any, request: Any) -> Any:
        current()
        return web.json(
            {**metrics.as_dict(), "sink_retrying": sink.stats.retrying_since is not None, "partitions": assigned_partitions(app, topic)}
        )

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        text = render_prometheus(
            current(), sink_retrying=sink.stats.retrying_since is not None, consumer_lag=await consumer_lag(app, topic)
        )
        return aiohttp_web.Response(text=text, content_type="text/plain", charset="utf-8")

    @app.page("/report")
    async def report(web: Any, request: Any) -> Any:
        params = request.query
        try:
            query = ReportQuery(
                group_by=params.get("group_by", "project"),
                project=params.get("project") or None,
                since=parse_time(params["since"]) if params.get("since") else None,
                until=parse_time(params["until"]) if params.get("until") else None,
                every=parse_every(params["every"], sink.window_seconds) if params.get("every") else None,
            )
        except ValueError as exc:
            return web.json({"error": str(exc), "group_by": sorted(GROUP_KEYS)}, status=400)
        try:
            body = await asyncio.to_thread(sink.report_json, query)
        except Exception as exc:  # ClickHouse unreachable: say so, don't guess totals
            return web.json({"error": f"ClickHouse did not answer: {exc}"}, status=503)
        return aiohttp_web.Response(body=body, content_type="application/json", charset="utf-8")
