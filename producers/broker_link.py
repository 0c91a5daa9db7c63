"""The Kafka transport's connection to the broker: connect, notice an outage, back off, reconnect.

Runs on the sender thread's event loop. A broker that refuses, times out or fails a
publish is taken as away: the sender spools new events and tries again after a backoff
that doubles up to `reconnect_max_seconds`. When it answers again, the spool's open
segment is sealed so what was written during the outage is replayed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING

from producers.spool import EventSpool

if TYPE_CHECKING:
    from producers.kafka_security import KafkaSecurity
    from producers.publisher import KafkaPublisher

log = logging.getLogger("producers.transport")


class BrokerLink:
    """One `KafkaPublisher` at a time, and what is known about the broker's health."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        spool: EventSpool,
        *,
        request_timeout_ms: int,
        stall_seconds: float,
        reconnect_initial_seconds: float,
        reconnect_max_seconds: float,
        client_id: str,
        security: KafkaSecurity | None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.spool = spool
        self.stall_seconds = stall_seconds
        self._request_timeout_ms = request_timeout_ms
        self._reconnect_initial = reconnect_initial_seconds
        self._reconnect_max = reconnect_max_seconds
        self._client_id = client_id
        self._security = security
        self._lock = threading.Lock()
        self.publisher: KafkaPublisher | None = None
        self.available: bool | None = None
        self.last_error: str | None = None
        self.next_attempt = 0.0
        self._backoff = reconnect_initial_seconds
        self._stopping: set[asyncio.Task[None]] = set()

    def health(self) -> tuple[bool | None, str | None]:
        """(broker available, last error), read together."""
        with self._lock:
            return self.available, self.last_error

    async def connected(self, closing: bool, close_deadline: float) -> KafkaPublisher | None:
        """A started publisher, or None while the broker is away (or backing off)."""
        if self.publisher is not None:
            return self.publisher
        if time.monotonic() < self.next_attempt:
            return None
        if closing and time.monotonic() >= close_deadline:
            return None
        from producers.publisher import KafkaPublisher

        publisher = KafkaPublisher(
            self.bootstrap_servers,
            self.topic,
            client_id=self._client_id,
            request_timeout_ms=self._request_timeout_ms,
            security=self._security,
            linger_ms=0,  # the events were gathered by the sender already: no second wait in aiokafka
        )
        timeout = self.stall_seconds * 2
        if closing:
            timeout = max(close_deadline - time.monotonic(), 0.05)
        try:
            await asyncio.wait_for(publisher.start(), timeout)
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, timed out: all mean "later"
            self.failed(exc, publisher)
            return None
        self.publisher = publisher
        self.answered()
        return publisher

    def answered(self) -> None:
        """The broker acknowledged: reset the backoff; after an outage, make the spool replayable."""
        was = self.available
        with self._lock:
            self.available = True
            self._backoff = self._reconnect_initial
            self.next_attempt = 0.0
        if was is False:
            log.warning("Kafka at %s answers again; replaying spooled usage events", self.bootstrap_servers)
        if was is not True:
            # Events spooled during the outage become replayable now.
            self.spool.seal()

    def stalled(self, events: int) -> None:
        """A publish of `events` was not acknowledged within `stall_seconds`."""
        if self.available is not False:
            log.warning(
                "Kafka at %s has not acknowledged %d usage events for %.0f s; new events go to the "
                "spool at %s until it answers",
                self.bootstrap_servers,
                events,
                self.stall_seconds,
                self.spool.directory,
            )
        with self._lock:
            self.available = False
            self.last_error = f"no acknowledgement within {self.stall_seconds:.0f} s"

    def failed(self, exc: BaseException, publisher: KafkaPublisher | None = None) -> None:
        """Connecting or publishing failed: back off, and stop the publisher aside."""
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.available is not False:
            log.warning(
                "Kafka at %s is unavailable (%s); usage events go to the spool at %s until it is back",
                self.bootstrap_servers,
                reason,
                self.spool.directory,
            )
        with self._lock:
            self.available = False
            self.last_error = reason
            self.next_attempt = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self._reconnect_max)
        stale = publisher or self.publisher
        self.publisher = None
        if stale is not None:
            # Stopped aside: a broken connection may take a while to close, and the sender
            # has events to spool meanwhile.
            task = asyncio.get_running_loop().create_task(self._stop_quietly(stale))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def stop(self) -> None:
        """Stop the publisher, and wait for those being stopped aside."""
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            await self._stop_quietly(publisher)
        await asyncio.gather(*self._stopping, return_exceptions=True)

    async def _stop_quietly(self, publisher: KafkaPublisher) -> None:
        try:
            await asyncio.wait_for(publisher.stop(), self.stall_seconds)
        except Exception:  # noqa: BLE001 - a broken connection may not close cleanly; it is dropped
            log.debug("stopping the Kafka producer failed", exc_info=True)
