"""The broker goes away and comes back: emits stay instant, and every event arrives exactly once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from producers.spool import EventSpool
from producers.transport import KafkaTransport
from stream_app.broker.local import LocalKafkaBroker, find_free_port
from stream_app.broker.topics import ensure_topics_sync
from tests.factories import make_event
from tests.integration.producers.kafka_reading import read_topic

pytest.importorskip("aiokafka")

EVENTS_DURING_OUTAGE = 1000
EVENTS_BEFORE = 50
CLOSED_PORT = "127.0.0.1:9"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafkaBroker]:
    """A broker of this test alone, which it may stop and start again (same port, same data)."""
    broker = LocalKafkaBroker(tmp_path / "kafka", port=find_free_port(), progress=lambda message: None)
    try:
        broker.up()
        yield broker
    finally:
        broker.down()


def wait_until_settled(transport: KafkaTransport, expected: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = transport.stats()
        if stats.delivered + stats.replayed >= expected and stats.queued == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"not all delivered after {timeout} s: {transport.stats()}")


def test_a_thousand_emits_return_at_once_while_the_broker_is_down_and_all_arrive_exactly_once_after(
    own_broker: LocalKafkaBroker, tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{own_broker.port}"
    topic = "outage.events"
    ensure_topics_sync(bootstrap, {topic: 4})
    transport = KafkaTransport(bootstrap, topic, EventSpool(tmp_path / "spool"), stall_seconds=1.0,
                               reconnect_max_seconds=2.0)
    before = [make_event(project_id=f"proj-{n % 3}") for n in range(EVENTS_BEFORE)]
    for event in before:
        transport.emit(event)
    assert transport.flush(30)

    own_broker.down()
    during = [make_event(project_id=f"proj-{n % 3}") for n in range(EVENTS_DURING_OUTAGE)]
    slowest = 0.0
    started = time.perf_counter()
    for event in during:
        begin = time.perf_counter()
        transport.emit(event)
        slowest = max(slowest, time.perf_counter() - begin)
    total = time.perf_counter() - started
    assert total < 1.0, f"{EVENTS_DURING_OUTAGE} emits took {total:.3f} s with the broker down"
    assert slowest < 0.1, f"one emit took {slowest * 1000:.1f} ms"
    time.sleep(3)  # long enough for the sender to notice the outage and spool

    own_broker.up()
    wait_until_settled(transport, EVENTS_BEFORE + EVENTS_DURING_OUTAGE)
    stats = transport.stats()
    transport.close()

    delivered = read_topic(bootstrap, topic, min_events=EVENTS_BEFORE + EVENTS_DURING_OUTAGE)
    arrivals = Counter(delivered.event_ids)
    outage_ids = [event.event_id for event in during]
    assert len(set(outage_ids) & set(arrivals)) == EVENTS_DURING_OUTAGE
    assert len(arrivals) == EVENTS_BEFORE + EVENTS_DURING_OUTAGE  # distinct ids
    assert len(delivered.events) == EVENTS_BEFORE + EVENTS_DURING_OUTAGE  # no event sent twice
    assert stats.dropped == 0 and stats.broker_available is True


def test_events_spooled_by_one_process_are_delivered_by_the_next(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    offline = KafkaTransport(CLOSED_PORT, topics["events"], EventSpool(spool_dir), stall_seconds=0.5)
    events = [make_event() for _ in range(200)]
    for event in events:
        offline.emit(event)
    offline.close()
    assert offline.stats().spooled == 200

    online = KafkaTransport(kafka_bootstrap, topics["events"], EventSpool(spool_dir))
    wait_until_settled(online, 200)
    online.close()

    delivered = read_topic(kafka_bootstrap, topics["events"], min_events=200)
    assert Counter(delivered.event_ids) == Counter(event.event_id for event in events)
    assert online.stats().replayed == 200 and online.spool.size_bytes == 0
