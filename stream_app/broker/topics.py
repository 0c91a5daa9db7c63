"""Create the pipeline's topics up front, with the partition count the worker expects.

Relying on broker-side auto-creation would give whatever `num.partitions` the broker has,
and the first producer would race the first consumer for the topic's existence.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from producers.kafka_security import kafka_client_kwargs
from stream_app.errors import BrokerError, ConfigurationError

if TYPE_CHECKING:
    from producers.kafka_security import KafkaSecurity

REPLICATION_FACTOR = 1
METADATA_POLL_SECONDS = 0.2


async def ensure_topics(
    bootstrap: str,
    topics: dict[str, int],
    timeout: float = 30.0,
    *,
    security: KafkaSecurity | None = None,
    replication_factor: int = REPLICATION_FACTOR,
) -> None:
    """Create each topic (name -> partitions) with `replication_factor` replicas unless it exists.

    Returns once the broker's metadata shows every topic with a leader for each
    partition, so a producer or consumer started next finds them ready. An existing
    topic is left as it is, whatever its partition count. A replication factor larger
    than the cluster is refused up front with the setting to change, rather than with
    the broker's INVALID_REPLICATION_FACTOR code.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    if not topics:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **kafka_client_kwargs(security)
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        check_replication_factor(replication_factor, len(cluster.get("brokers") or []), bootstrap)
        new_topics = [NewTopic(name, partitions, replication_factor) for name, partitions in topics.items()]
        response = await admin.create_topics(new_topics, timeout_ms=int(timeout * 1000))
        _raise_for_creation_errors(response.topic_errors)
        await _wait_until_listed(admin, sorted(topics), time.monotonic() + timeout)
    except KafkaError as exc:
        raise BrokerError(f"could not create the topics {sorted(topics)} at {bootstrap}: {exc!r}") from exc
    finally:
        await admin.close()


def ensure_topics_sync(bootstrap: str, topics: dict[str, int], timeout: float = 30.0, **options: Any) -> None:
    """`ensure_topics` for callers without an event loop (the CLI, test fixtures)."""
    asyncio.run(ensure_topics(bootstrap, topics, timeout, **options))


def check_replication_factor(replication_factor: int, brokers: int, bootstrap: str) -> None:
    """Refuse a replication factor the cluster cannot hold, naming the setting and the fix."""
    if replication_factor > brokers:
        raise ConfigurationError(
            f"USAGE_TOPIC_REPLICATION_FACTOR={replication_factor} but the Kafka cluster at {bootstrap} has "
            f"{brokers} broker{'s' if brokers != 1 else ''}: set USAGE_TOPIC_REPLICATION_FACTOR={max(brokers, 1)} "
            "(or fewer), or add brokers"
        )


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
