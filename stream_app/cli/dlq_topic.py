"""Reading the dead-letter topic for `usage-pipeline dlq`: every record, once, then stop.

A bounded read, unlike a worker's: from each partition's beginning to the end offset it
had when reading began, with no consumer group, so nothing is committed, any number of
people can read at once, running workers are not disturbed, and the read ends even while
workers keep dead-lettering. A read that stops making progress is an error, not a hang.
Kafka client imports are deferred so that `usage-pipeline` starts fast without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from producers.kafka_security import kafka_client_kwargs
from stream_app.errors import PipelineError

if TYPE_CHECKING:
    from producers.kafka_security import KafkaSecurity
    from stream_app.core.dead_letter import DeadLetter

# A read that makes no progress for this long means the broker stopped answering.
READ_STALL_SECONDS = 30.0


class DeadLetterReader:
    """Reads a topic from its beginning to the end offsets it had when reading began."""

    def __init__(self, bootstrap: str, topic: str, security: KafkaSecurity | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.security = security
        self.exists = True

    async def letters(self) -> AsyncIterator[DeadLetter | None]:
        """Each record as a `DeadLetter`, or None for a record that is not one."""
        from stream_app.core.dead_letter import DeadLetterFormatError, parse_dead_letter

        async for partition, offset, key, value in self.records():
            try:
                yield parse_dead_letter(key, value, partition=partition, offset=offset)
            except DeadLetterFormatError:
                yield None

    async def records(self) -> AsyncIterator[tuple[int, int, bytes | None, bytes | None]]:
        """(partition, offset, key, value) of every record, partition by partition interleaved."""
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.errors import KafkaError

        try:
            numbers = await self._partitions()
        except KafkaError as exc:
            raise PipelineError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        if numbers is None:
            self.exists = False
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,  # no group: nothing is committed, nobody is rebalanced
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="usage-pipeline-dlq",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **kafka_client_kwargs(self.security),
        )
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise PipelineError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        try:
            partitions = [TopicPartition(self.topic, number) for number in numbers]
            consumer.assign(partitions)
            begin = await consumer.beginning_offsets(partitions)
            end = await consumer.end_offsets(partitions)
            pending = {tp for tp in partitions if end[tp] > begin[tp]}
            for tp in pending:
                consumer.seek(tp, begin[tp])
            loop = asyncio.get_running_loop()
            last_progress = loop.time()
            while pending:
                batches = await consumer.getmany(*pending, timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset < end[tp]:
                            yield tp.partition, record.offset, record.key, record.value
                    if records:
                        last_progress = loop.time()
                for tp in list(pending):
                    if await consumer.position(tp) >= end[tp]:
                        pending.discard(tp)
                if pending and loop.time() - last_progress > READ_STALL_SECONDS:
                    raise PipelineError(
                        f"reading {self.topic} made no progress for {READ_STALL_SECONDS:.0f} s "
                        f"(partitions {sorted(tp.partition for tp in pending)} not read to their end)"
                    )
        except KafkaError as exc:
            raise PipelineError(f"reading {self.topic} at {self.bootstrap} failed: {exc}") from exc
        finally:
            await consumer.stop()

    async def _partitions(self) -> list[int] | None:
        """The topic's partition numbers, or None if it does not exist."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, client_id="usage-pipeline-dlq", **kafka_client_kwargs(self.security)
        )
        try:
            await admin.start()
            # Every topic: a metadata request naming this one could create it (auto.create.topics.enable).
            for topic in await admin.describe_topics():
                if topic["topic"] == self.topic and topic["error_code"] == 0:
                    return sorted(partition["partition"] for partition in topic["partitions"])
            return None
        finally:
            await admin.close()
