"""The `ingest-http` server: `POST /v1/events` authenticates, validates, publishes to Kafka, answers 202.

Thin aiohttp shell around `stream_app.ingest.keys` (who may write which project) and
`stream_app.ingest.validation` (the worker's own decode, run in a thread so a large body
never stalls the event loop). A 202 is sent only after Kafka
acknowledged every event (idempotent producer, acks=all), so a client that got a 202 can
forget the events; one that got a 5xx or no answer resends them, which is safe: events
are billed once per `event_id`.

    POST /v1/events     `Authorization: Bearer <API key>`; one event or a list of up to 1,000
                        -> 202 {"accepted", "event_ids"}
                        401 no or unknown key, 403 a project the key may not write (nothing published),
                        400 not JSON, 413 too big, 422 {"error", "problems": [{index, field, message}]},
                        503 Kafka unavailable (Retry-After)
    GET  /v1/schema     the event's JSON Schema, to validate on the client side
    GET  /healthz       {"status": "ok", "kafka": "connected" | "not connected"}
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from aiohttp import web

from producers import KafkaPublisher, ProducerError
from stream_app.core.free_form import DEFAULT_DENIED_CONTEXT_KEYS
from stream_app.ingest.keys import KeyFile, authenticate
from stream_app.ingest.validation import DEFAULT_MAX_BODY_BYTES, IngestRejection, parse_ingest_body

if TYPE_CHECKING:
    from producers.kafka_security import KafkaSecurity

log = logging.getLogger("stream_app.ingest")

RETRY_AFTER_SECONDS = 5
_PUBLISHER_KEY = web.AppKey("ingest_publisher", object)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """What the server needs: where to publish, and its limits."""

    bootstrap_servers: str
    topic: str
    key_file: KeyFile
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_future_skew: timedelta = timedelta(minutes=5)
    denied_context_keys: frozenset[str] = DEFAULT_DENIED_CONTEXT_KEYS
    security: KafkaSecurity | None = None


class _LazyPublisher:
    """One Kafka publisher for the server, (re)connected on demand, so the server starts
    and answers 503 while Kafka is away instead of refusing to start."""

    def __init__(self, config: IngestConfig) -> None:
        self._config = config
        self._publisher: KafkaPublisher | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._publisher is not None

    async def get(self) -> KafkaPublisher:
        async with self._lock:
            if self._publisher is None:
                publisher = KafkaPublisher(
                    self._config.bootstrap_servers, self._config.topic, linger_ms=5, security=self._config.security
                )
                await publisher.start()
                self._publisher = publisher
            return self._publisher

    async def discard(self) -> None:
        async with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                await asyncio.wait_for(publisher.stop(), 10)
            except Exception:  # noqa: BLE001 - it failed us already; dropping it is all that is left
                log.debug("stopping a failed publisher failed", exc_info=True)


def build_app(config: IngestConfig) -> web.Application:
    """The aiohttp application (routes above)."""
    # Room for the headers around the largest body, so our own 413 answers first.
    app = web.Application(client_max_size=config.max_body_bytes + 1)
    publisher = _LazyPublisher(config)
    app[_PUBLISHER_KEY] = publisher

    async def post_events(request: web.Request) -> web.Response:
        return await _post_events(request, config, publisher)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "kafka": "connected" if publisher.connected else "not connected"})

    async def schema(request: web.Request) -> web.Response:
        from schemas.json_schema import event_json_schema

        return web.json_response(event_json_schema())

    async def close_publisher(app: web.Application) -> None:
        await publisher.discard()

    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/v1/schema", schema)
    app.router.add_get("/healthz", healthz)
    app.on_cleanup.append(close_publisher)
    return app


async def _post_events(request: web.Request, config: IngestConfig, publisher: _LazyPublisher) -> web.Response:
    # Before the body is read: an unknown caller costs no parsing.
    key = authenticate(request.headers.get("Authorization"), config.key_file.keys())
    if key is None:
        return web.json_response(
            {"error": "send an API key as `Authorization: Bearer <key>` (`usage-pipeline keys create --project P`)"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="usage-pipeline ingest"'},
        )
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        return _too_large(request.content_length, config.max_body_bytes)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(None, config.max_body_bytes)
    if len(body) > config.max_body_bytes:
        return _too_large(len(body), config.max_body_bytes)
    parsed = await asyncio.to_thread(
        parse_ingest_body,
        body,
        now=datetime.now(timezone.utc),
        max_future_skew=config.max_future_skew,
        denied_context_keys=config.denied_context_keys,
        allowed_projects=frozenset(key.projects),
    )
    if isinstance(parsed, IngestRejection):
        return web.json_response(parsed.body(), status=parsed.status)
    try:
        kafka = await publisher.get()
        await kafka.publish(parsed)
    except ProducerError as exc:
        await publisher.discard()
        log.warning("ingest: Kafka did not take %d events: %s", len(parsed), exc)
        return web.json_response(
            {"error": f"Kafka is unavailable, nothing was accepted; resend the same events later: {exc}"},
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return web.json_response({"accepted": len(parsed), "event_ids": [event.event_id for event in parsed]}, status=202)


def _too_large(size: int | None, limit: int) -> web.Response:
    told = f"{size} bytes" if size is not None else "over the limit"
    return web.json_response(
        {"error": f"body is {told}; at most {limit} bytes per request: split it into several requests"},
        status=413,
    )

