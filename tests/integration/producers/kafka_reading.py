"""Read a test topic back: every record, each message's events decoded, until the topic's end."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiokafka


@dataclass(frozen=True)
class Delivered:
    """What a topic holds: its messages (key, events) and every event in them."""

    messages: list[tuple[str, list[dict[str, Any]]]]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for _key, batch in self.messages for event in batch]

    @property
    def event_ids(self) -> list[str]:
        return [event["event_id"] for event in self.events]


def read_topic(bootstrap: str, topic: str, *, min_events: int, timeout: float = 90.0) -> Delivered:
    """Every message of `topic`, once at least `min_events` arrived and the end is reached."""
    return asyncio.run(_read(bootstrap, topic, min_events, timeout))


async def _read(bootstrap: str, topic: str, min_events: int, timeout: float) -> Delivered:
    consumer = aiokafka.AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    messages: list[tuple[str, list[dict[str, Any]]]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    value = json.loads(record.value)
                    messages.append((record.key.decode(), value if isinstance(value, list) else [value]))
            if sum(len(batch) for _, batch in messages) >= min_events and await _at_end(consumer):
                # One more short poll: anything sent twice would show up now.
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        value = json.loads(record.value)
                        messages.append((record.key.decode(), value if isinstance(value, list) else [value]))
                return Delivered(messages)
        raise AssertionError(f"only {sum(len(b) for _, b in messages)} of {min_events} events arrived in {timeout} s")
    finally:
        await consumer.stop()


async def _at_end(consumer: aiokafka.AIOKafkaConsumer) -> bool:
    partitions = list(consumer.assignment())
    if not partitions:
        return False
    ends = await consumer.end_offsets(partitions)
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return False
    return True
