"""Publish usage events to Kafka as batches keyed by project_id (SPEC §1).

The only module of `producers` that does network I/O. aiokafka is imported when a
publisher starts, so `import producers` (and even constructing a publisher) needs only
pydantic; services install it with `pip install 'llm-usage-pipeline[producer]'`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from producers.batching import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_EVENTS_PER_MESSAGE,
    EventBatch,
    pack_batches,
    pack_encoded,
)
from producers.errors import (
    BrokerUnavailableError,
    MissingDependencyError,
    PublishError,
    PublisherStateError,
)
from producers.wire import EncodedEvent
from schemas import UsageTrackingEvent

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from producers.kafka_security import KafkaSecurity

DEFAULT_TOPIC = "llm.usage.events"
# Room for the key, record and batch headers around the largest payload we build.
_REQUEST_OVERHEAD_BYTES = 64 * 1024
# aiokafka's own default; never go below it, so small limits do not reject small messages.
_MIN_MAX_REQUEST_SIZE = 1_048_576


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one `publish()` call delivered: events, and the Kafka messages carrying them."""

    events: int
    messages: int


class KafkaPublisher:
    """Async publisher of `UsageTrackingEvent`s: batched per project, idempotent, acks=all.

    Use as `async with KafkaPublisher(bootstrap) as publisher: await publisher.publish(events)`.
    Every message's key is its events' project_id, so a project's events (and any re-send
    of them) always land on the same partition, in order.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = DEFAULT_TOPIC,
        *,
        linger_ms: int = 20,
        max_events_per_message: int = MAX_EVENTS_PER_MESSAGE,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        client_id: str = "usage-pipeline-producer",
        compression_type: str | None = None,
        request_timeout_ms: int = 40_000,
        security: KafkaSecurity | None = None,
    ) -> None:
        if not 1 <= max_events_per_message <= MAX_EVENTS_PER_MESSAGE:
            raise ValueError(
                f"max_events_per_message must be 1..{MAX_EVENTS_PER_MESSAGE}, got {max_events_per_message}"
            )
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._linger_ms = linger_ms
        self._max_events = max_events_per_message
        self._max_bytes = max_message_bytes
        self._client_id = client_id
        # Off by default: aiokafka's lz4/snappy/zstd need `cramjam`, and every consumer
        # would need it too to read the messages back.
        self._compression_type = compression_type
        # How long a send may wait for the broker before its future fails (aiokafka's
        # default is 40 s); the background transport lowers it to notice an outage sooner.
        self._request_timeout_ms = request_timeout_ms
        # None: PLAINTEXT. Settings from the environment: `read_kafka_security()`.
        self._security = security
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> KafkaPublisher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect to the brokers. Raises `BrokerUnavailableError` if none answers."""
        if self._producer is not None:
            raise PublisherStateError("publisher already started")
        aiokafka = _import_aiokafka()
        producer = self._build_producer(aiokafka)
        try:
            await producer.start()
        except aiokafka.errors.KafkaError as exc:
            # aiokafka leaves sockets and tasks behind after a failed start unless stopped.
            await producer.stop()
            raise BrokerUnavailableError(self.bootstrap_servers, str(exc) or type(exc).__name__) from exc
        self._producer = producer

    async def stop(self) -> None:
        """Deliver whatever is still buffered, then disconnect. Safe to call twice."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, events: Sequence[UsageTrackingEvent]) -> PublishResult:
        """Send the events as per-project batches and wait until the broker acknowledged all.

        Batches are sent together (so they share produce requests) and awaited together.
        Raises `EventTooLargeError` before sending anything if one event cannot fit in a
        message, and `PublishError` if any batch was not acknowledged; re-publishing the
        same events after a failure is safe, since consumers deduplicate by event_id.
        """
        self._require_started()
        return await self._publish(pack_batches(events, self._max_events, self._max_bytes))

    async def publish_encoded(self, events: Sequence[EncodedEvent]) -> PublishResult:
        """`publish` for events already encoded (the background transport's)."""
        self._require_started()
        return await self._publish(pack_encoded(events, self._max_events, self._max_bytes))

    async def _publish(self, batches: list[EventBatch]) -> PublishResult:
        producer = self._require_started()
        if not batches:
            return PublishResult(events=0, messages=0)
        await self._send_batches(producer, batches)
        return PublishResult(events=sum(len(batch.event_ids) for batch in batches), messages=len(batches))

    async def publish_raw(self, payload: bytes, key: bytes | None = None) -> Any:
        """Send one hand-made message value as is (for tests of malformed input).

        Returns aiokafka's `RecordMetadata` (partition, offset) once acknowledged.
        """
        producer = self._require_started()
        aiokafka = _import_aiokafka()
        try:
            return await producer.send_and_wait(self.topic, payload, key=key)
        except aiokafka.errors.KafkaError as exc:
            raise PublishError(self.topic, 1, 1, _describe(exc)) from exc

    def _build_producer(self, aiokafka: ModuleType) -> AIOKafkaProducer:
        from producers.kafka_security import kafka_client_kwargs

        try:
            return aiokafka.AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                client_id=self._client_id,
                # Idempotence makes broker-side retries neither duplicate nor reorder a batch.
                enable_idempotence=True,
                acks="all",
                linger_ms=self._linger_ms,
                max_request_size=max(_MIN_MAX_REQUEST_SIZE, self._max_bytes + _REQUEST_OVERHEAD_BYTES),
                compression_type=self._compression_type,
                request_timeout_ms=self._request_timeout_ms,
                **kafka_client_kwargs(self._security),
            )
        except RuntimeError as exc:
            # aiokafka's way of saying the codec library is missing.
            raise MissingDependencyError(
                f"{exc}: install `cramjam` to use compression_type={self._compression_type!r}, "
                "or publish uncompressed (compression_type=None)"
            ) from exc

    async def _send_batches(self, producer: AIOKafkaProducer, batches: list[EventBatch]) -> None:
        futures: list[asyncio.Future[Any]] = []
        send_error: Exception | None = None
        try:
            for batch in batches:
                futures.append(await producer.send(self.topic, batch.payload, key=batch.key))
        except Exception as exc:  # noqa: BLE001 - reported below, after what was sent is settled
            send_error = exc
        # Wait for every batch already handed over, so the error counts what really failed.
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        delivery_errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        failed = len(delivery_errors) + len(batches) - len(futures)
        if failed:
            cause = send_error or delivery_errors[0]
            raise PublishError(self.topic, failed, len(batches), _describe(cause)) from cause

    def _require_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise PublisherStateError("publisher is not started: call `await start()` or use `async with`")
        return self._producer


def _import_aiokafka() -> ModuleType:
    try:
        import aiokafka
        import aiokafka.errors
    except ImportError as exc:
        raise MissingDependencyError(
            "publishing to Kafka needs aiokafka: pip install 'llm-usage-pipeline[producer]'"
        ) from exc
    return aiokafka


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
