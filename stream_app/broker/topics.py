"""Create the pipeline's topics up front, with the partition count the worker expects.

Relying on broker-side auto-creation would give whatever `num.partitions` the broker has,
and the first producer would race the first consumer for the topic's existence.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from stream_app.errors import BrokerError

REPLICATION_FACTOR = 1
METADATA_POLL_SECONDS = 0.2


async def ensure_topics(bootstrap: str, topics: dict[str, int], timeout: float = 30.0) -> None:
    """Create each topic (name -> partitions, replication 1) unless it exists.

    Returns once the broker's metadata shows every topic with a leader for each
    partition, so a producer or consumer started next finds them ready. An existing
    topic is left as it is, whatever its partition count.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    if not topics:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await admin.start()
        new_topics = [NewTopic(name, partitions, REPLICATION_FACTOR) for name, partitions in topics.items()]
        response = await admin.create_topics(new_topics, timeout_ms=int(timeout * 1000))
        _raise_for_creation_errors(response.topic_errors)
        await _wait_until_listed(admin, sorted(topics), time.monotonic() + timeout)
    except KafkaError as exc:
        raise BrokerError(f"could not create the topics {sorted(topics)} at {bootstrap}: {exc!r}") from exc
    finally:
        await admin.close()


def ensure_topics_sync(bootstrap: str, topics: dict[str, int], timeout: float = 30.0) -> None:
    """`ensure_topics` for callers without an event loop (the CLI, test fixtures)."""
    asyncio.run(ensure_topics(bootstrap, topics, timeout))


def _raise_for_creation_errors(topic_errors: list[tuple[Any, ...]]) -> None:
    """Raise for any per-topic error other than "already exists"."""
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    problems = []
    for topic, error_code, *message in topic_errors:
        if error_code == 0 or error_code == TopicAlreadyExistsError.errno:
            continue
        detail = message[0] if message and message[0] else for_code(error_code).__name__
        problems.append(f"{topic}: {detail}")
    if problems:
        raise BrokerError("the broker refused to create topics: " + "; ".join(problems))


async def _wait_until_listed(admin: Any, names: list[str], deadline: float) -> None:
    # Creation is acknowledged by the controller before every broker's metadata has it.
    while True:
        described = await admin.describe_topics(names)
        missing = [name for name in names if not _is_ready(described, name)]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise BrokerError(f"topics {missing} did not appear in the broker's metadata in time")
        await asyncio.sleep(METADATA_POLL_SECONDS)


def _is_ready(described: list[dict[str, Any]], name: str) -> bool:
    for topic in described:
        if topic.get("topic") == name:
            partitions = topic.get("partitions") or []
            return topic.get("error_code") == 0 and bool(partitions) and all(
                p.get("leader", -1) >= 0 for p in partitions
            )
    return False
