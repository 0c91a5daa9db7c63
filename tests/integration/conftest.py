"""Integration tests run against a real Apache Kafka broker, one per test session.

Where it comes from, first match wins:
1. KAFKA_BOOTSTRAP_SERVERS, when set: a broker someone else runs (CI service, compose).
2. A Docker engine with testcontainers installed: a Kafka container.
3. Otherwise: a local JVM broker (stream_app.broker.local) in a temporary directory on a
   free port, its jars cached across sessions; always stopped at the end of the session.

Every test gets its own topics and consumer group, so tests never see each other's data
even on a shared broker.

Tests that run on a ClickHouse server as well as on the embedded store share one server per
session (`clickhouse_server`), each test in a database of its own:
1. USAGE_TEST_CLICKHOUSE_SERVER=http://user:pass@host:8123, when set: a server someone runs.
2. USAGE_TEST_CLICKHOUSE_SERVER=docker: a ClickHouse container (testcontainers).
3. Otherwise: the local server (`usage-pipeline clickhouse up`, stream_app.clickhouse_server)
   in a temporary directory on a free port; always stopped at the end of the session.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_app.broker.local import LocalKafkaBroker, find_free_port
from stream_app.broker.topics import ensure_topics_sync
from stream_app.clickhouse_server import LocalClickHouseServer

HERE = Path(__file__).resolve().parent
TOPIC_PARTITIONS = 4


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration, so `-m "not integration"` skips them."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of a real Kafka broker for this test session."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
    elif _docker_available():
        yield from _kafka_container()
    else:
        yield from _local_broker(tmp_path_factory.mktemp("kafka"))


@pytest.fixture
def topics(kafka_bootstrap: str) -> dict[str, str]:
    """Fresh topic names for this test, created with 4 partitions: {"events": ..., "dlq": ...}."""
    suffix = uuid.uuid4().hex[:12]
    names = {"events": f"test.{suffix}.events", "dlq": f"test.{suffix}.events.dlq"}
    ensure_topics_sync(kafka_bootstrap, {name: TOPIC_PARTITIONS for name in names.values()})
    return names


@pytest.fixture
def unique_group() -> str:
    """A consumer group id no other test uses, so committed offsets never carry over."""
    return f"test-group-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (no database) of one real ClickHouse server for this test session."""
    configured = os.environ.get("USAGE_TEST_CLICKHOUSE_SERVER", "")
    if configured == "docker":
        yield from _clickhouse_container()
    elif configured:
        yield configured.rstrip("/")
    else:
        yield from _local_clickhouse_server(tmp_path_factory.mktemp("clickhouse-server"))


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    """"chdb" (the embedded store, the default) or "server"; parametrize with `both_stores`."""
    return getattr(request, "param", "chdb")


@pytest.fixture
def store_server(store_kind: str, request: pytest.FixtureRequest) -> str | None:
    """The session's ClickHouse server base URL for server-kind tests, None for chdb ones."""
    return request.getfixturevalue("clickhouse_server") if store_kind == "server" else None


def _local_clickhouse_server(home: Path) -> Iterator[str]:
    server = LocalClickHouseServer(home, port=find_free_port(), progress=_report)
    previous_handler = _interrupt_on_sigterm()
    try:
        yield server.up().rsplit("/", 1)[0]
    finally:
        # Also after a failed or interrupted start: up() records the process before waiting.
        server.down()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def _clickhouse_container() -> Iterator[str]:
    try:  # testcontainers 4.15 moved the module; older ones only have the old path
        from testcontainers.community.clickhouse import ClickHouseContainer
    except ImportError:
        from testcontainers.clickhouse import ClickHouseContainer

    with ClickHouseContainer("clickhouse/clickhouse-server:25.8", username="usage", password="usage") as server:
        yield f"http://usage:usage@{server.get_container_host_ip()}:{server.get_exposed_port(8123)}"


def _local_broker(home: Path) -> Iterator[str]:
    broker = LocalKafkaBroker(home, port=find_free_port(), progress=_report)
    previous_handler = _interrupt_on_sigterm()
    try:
        yield broker.up()
    finally:
        # Also after a failed or interrupted start: up() records the JVM before waiting.
        broker.down()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def _interrupt_on_sigterm() -> signal.Handlers | None:
    """Make SIGTERM (a CI timeout, `kill`) end the session like Ctrl-C does.

    By default SIGTERM kills pytest without any teardown, which would leave the broker
    running with nobody to stop it. Returns the handler to restore, or None if another
    handler was already installed (then that one decides).
    """
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    return signal.SIG_DFL


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _kafka_container() -> Iterator[str]:
    with _kafka_container_class()().with_kraft() as container:
        yield container.get_bootstrap_server()


def _kafka_container_class() -> type:
    # testcontainers 4.15 moved the module and deprecated the old path; older ones only have that.
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        from testcontainers.kafka import KafkaContainer
    return KafkaContainer


def _docker_available() -> bool:
    """Whether testcontainers is installed and a Docker engine answers."""
    try:
        import docker

        _kafka_container_class()
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all mean "no Docker".
        return False


def _report(message: str) -> None:
    # Captured by pytest and shown when a test errors, which explains a slow or failed
    # first start (the jar download) without adding noise to a green run.
    print(f"[kafka] {message}", file=sys.stderr, flush=True)
