"""The real broker: a message goes through it, and `usage-pipeline kafka up|status|down` work."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from stream_app import cli
from stream_app.broker.local import LocalKafkaBroker, accepts_connections, find_free_port


async def produce_then_consume(bootstrap: str, topic: str, group: str, value: bytes) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async with AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True) as producer:
        await producer.send_and_wait(topic, value, key=b"project-1")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    async with consumer:
        batches = await consumer.getmany(timeout_ms=15_000, max_records=10)
    return [record.value for records in batches.values() for record in records]


def test_a_message_goes_through_the_broker(kafka_bootstrap, topics, unique_group):
    value = f"hello {uuid.uuid4()}".encode()

    received = asyncio.run(produce_then_consume(kafka_bootstrap, topics["events"], unique_group, value))

    assert received == [value]


@pytest.fixture
def cli_home(tmp_path, monkeypatch):
    """A home of its own for the CLI, and a guarantee its broker is stopped afterwards."""
    home = tmp_path / "home"
    monkeypatch.setenv("USAGE_PIPELINE_HOME", str(home))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    # Only the kafka command: the others import Faust and ClickHouse, which this test
    # does not need, and have tests of their own.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("stream_app.cli.kafka_cmd",))
    try:
        yield home
    finally:
        LocalKafkaBroker(home / "kafka", progress=lambda message: None).down()


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_cli_kafka_up_is_idempotent_and_status_and_down_work(cli_home, capsys):
    port = find_free_port()

    code, out = run_cli(capsys, "kafka", "up", "--port", str(port))
    assert code == 0
    bootstrap = out.strip().splitlines()[-1]
    assert bootstrap == f"127.0.0.1:{port}"

    status = LocalKafkaBroker(cli_home / "kafka").status()
    assert status.running and status.bootstrap == bootstrap and status.pid

    code, out = run_cli(capsys, "kafka", "up")
    assert (code, out.strip()) == (0, bootstrap)
    assert LocalKafkaBroker(cli_home / "kafka").status().pid == status.pid  # No second JVM.

    code, out = run_cli(capsys, "kafka", "status")
    assert code == 0
    assert bootstrap in out and str(status.pid) in out

    code, _ = run_cli(capsys, "kafka", "down")
    assert code == 0
    assert not accepts_connections(port)
    assert not _alive(status.pid)

    code, out = run_cli(capsys, "kafka", "status")
    assert code == 3
    assert "not running" in out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
