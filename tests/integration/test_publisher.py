"""`KafkaPublisher` against a real broker: batches keyed by project, each event exactly once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, defaultdict

import pytest

from producers import KafkaPublisher, PublishResult
from tests.factories import make_event

pytestmark = pytest.mark.integration

aiokafka = pytest.importorskip("aiokafka")

PROJECTS = ("proj-alpha", "proj-beta", "proj-gamma")
EVENT_COUNT = 2_500
CONSUME_TIMEOUT_SECONDS = 60


def _unique_topic(purpose: str) -> str:
    return f"test.{purpose}.{uuid.uuid4().hex[:12]}"


async def _publish(bootstrap: str, topic: str, events: list) -> PublishResult:
    async with KafkaPublisher(bootstrap, topic) as publisher:
        return await publisher.publish(events)


async def _consume_all(bootstrap: str, topic: str, min_messages: int) -> list:
    """Every record of the topic, read until each partition's end offset is reached."""
    consumer = aiokafka.AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        records = []
        deadline = asyncio.get_running_loop().time() + CONSUME_TIMEOUT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            fetched = await consumer.getmany(timeout_ms=500)
            for partition_records in fetched.values():
                records.extend(partition_records)
            if len(records) >= min_messages and await _at_end(consumer):
                return records
        pytest.fail(f"read {len(records)} messages from {topic} in {CONSUME_TIMEOUT_SECONDS}s")
    finally:
        await consumer.stop()


async def _at_end(consumer) -> bool:
    partitions = list(consumer.assignment())
    end_offsets = await consumer.end_offsets(partitions)
    positions = {tp: await consumer.position(tp) for tp in partitions}
    return all(positions[tp] >= end for tp, end in end_offsets.items())


def test_publishes_per_project_batches_each_event_exactly_once(kafka_bootstrap):
    topic = _unique_topic("publisher")
    events = [make_event(project_id=PROJECTS[n % len(PROJECTS)]) for n in range(EVENT_COUNT)]

    result = asyncio.run(_publish(kafka_bootstrap, topic, events))
    records = asyncio.run(_consume_all(kafka_bootstrap, topic, min_messages=result.messages))

    assert result == PublishResult(events=EVENT_COUNT, messages=len(records))
    arrived: Counter[str] = Counter()
    partitions_of: defaultdict[str, set[int]] = defaultdict(set)
    order_of: defaultdict[str, list[str]] = defaultdict(list)
    for record in records:
        batch = json.loads(record.value)
        key = record.key.decode()
        assert 1 <= len(batch) <= 1000
        assert {item["project_id"] for item in batch} == {key}
        partitions_of[key].add(record.partition)
        order_of[key].extend(item["event_id"] for item in batch)
        arrived.update(item["event_id"] for item in batch)

    assert arrived == Counter(event.event_id for event in events)  # all, and each once
    # One partition per project, in publish order: re-sends land where the first send did.
    assert all(len(partitions) == 1 for partitions in partitions_of.values())
    for project in PROJECTS:
        assert order_of[project] == [e.event_id for e in events if e.project_id == project]


def test_publish_raw_sends_bytes_unchanged(kafka_bootstrap):
    topic = _unique_topic("publisher-raw")

    async def send() -> None:
        async with KafkaPublisher(kafka_bootstrap, topic) as publisher:
            await publisher.publish_raw(b'{"not": "an event"', key=b"proj-alpha")

    asyncio.run(send())
    (record,) = asyncio.run(_consume_all(kafka_bootstrap, topic, min_messages=1))

    assert (record.key, record.value) == (b"proj-alpha", b'{"not": "an event"')
