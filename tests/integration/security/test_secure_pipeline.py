"""The whole pipeline through a SASL_SSL broker (`kafka up --secure`), and what it refuses.

One secure broker for the module (SCRAM-SHA-512, its own CA). Through it: the SDK's
publisher, `emit`, ingest-http, the worker, `dlq inspect` and `dlq replay`. Attacks tried: a wrong
password, a client without TLS, a TLS client that does not trust the broker's CA; and
every secret (SASL password, admin token, ingest key) looked for in the worker's debug
log, /stats, /metrics and every command's output.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from producers import KafkaPublisher
from producers.kafka_security import KafkaSecurity, kafka_client_kwargs, read_kafka_security
from producers.settings import read_tracking_settings
from stream_app.broker.local import find_free_port
from stream_app.ingest.keys import KeyFile
from stream_app.ingest.server import IngestConfig, build_app
from stream_app.worker.process import WorkerProcess
from tests.factories import make_event

ADMIN_TOKEN = "secure-admin-" + "k3P" * 11


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_app", *args],
        env={**os.environ, **env}, input=stdin, capture_output=True, text=True, timeout=180,
    )


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`kafka up --secure` in a fresh home: the `export` settings it printed."""
    home = tmp_path_factory.mktemp("secure-home")
    env = {"USAGE_PIPELINE_HOME": str(home)}
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_PASSWORD"):
        env[name] = ""
    try:
        up = cli(env, "kafka", "up", "--secure", "--port", str(find_free_port()))
        assert up.returncode == 0, up.stderr
        exports = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in up.stdout.splitlines()
        )
        yield {**exports, "USAGE_PIPELINE_HOME": str(home)}
    finally:
        cli(env, "kafka", "down", "--secure")


def test_the_pipeline_runs_through_sasl_ssl_and_no_secret_is_printed(secure_broker: dict[str, str], tmp_path: Path) -> None:
    password = secure_broker["KAFKA_SASL_PASSWORD"]
    assert secure_broker["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and secure_broker["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    env = {
        **secure_broker,
        "CLICKHOUSE_URL": f"chdb://{tmp_path / 'clickhouse'}",
        "USAGE_PIPELINE_HOME": str(tmp_path / "home"),
        "USAGE_EVENTS_TOPIC": "secure.events",
        "USAGE_DLQ_TOPIC": "secure.events.dlq",
        "USAGE_CONSUMER_GROUP": "secure-group",
        "USAGE_CHUNK_WITHIN_SECONDS": "0.2",
        "USAGE_ADMIN_TOKEN": ADMIN_TOKEN,
        "USAGE_LOG_LEVEL": "debug",
    }
    security = read_kafka_security(env)
    assert read_tracking_settings(env).kafka_security == security  # the SDK reads the same settings
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    outputs: list[str] = []

    # The SDK's publisher, `emit`, and ingest-http each publish events of their own.
    sdk_events = [make_event(project_id="proj-sdk") for _ in range(3)]
    emit_events = [make_event(project_id="proj-emit") for _ in range(2)]
    ingest_event = make_event(project_id="proj-ingest")
    prompt_event = make_event(project_id="proj-sdk", context={"prompt": "SECRET-PROMPT-TEXT"})

    with WorkerProcess(env, log_path=tmp_path / "worker.log") as worker:  # creates the topics, over SASL_SSL
        async def publish_sdk() -> None:
            async with KafkaPublisher(bootstrap, env["USAGE_EVENTS_TOPIC"], security=security) as publisher:
                await publisher.publish([*sdk_events, prompt_event])

        asyncio.run(publish_sdk())
        emitted = cli(env, "emit", "-", stdin="".join(e.model_dump_json() + "\n" for e in emit_events))
        outputs += [emitted.stdout, emitted.stderr]
        assert emitted.returncode == 0, emitted.stderr
        key_file = KeyFile(tmp_path / "keys.json")
        key = key_file.create(["proj-ingest"], now=datetime.now(UTC)).key
        status = asyncio.run(_ingest(IngestConfig(bootstrap, env["USAGE_EVENTS_TOPIC"], key_file, security=security), key, ingest_event))
        assert status == 202

        stats = _wait_for_events(worker, 6)
        report = worker.report("project")
        metrics = _read(f"{worker.url}/metrics", {})
        stats_text = _read(f"{worker.url}/stats", worker.admin_headers)
        inspected = cli(env, "dlq", "inspect", "--format", "json")
        replayed = cli(env, "dlq", "replay", "--dry-run")
        outputs += [inspected.stdout, inspected.stderr, replayed.stdout, replayed.stderr]

    assert stats["events_accepted"] == 6
    assert {row["project_id"]: row["events"] for row in report} == {"proj-sdk": 3, "proj-emit": 2, "proj-ingest": 1}
    assert inspected.returncode == 0, inspected.stderr
    letters = json.loads(inspected.stdout)
    assert [reason["reason"] for reason in letters["reasons"]] == ["prompt_text_in_context"]
    assert "still fail (prompt_text_in_context 1)" in replayed.stdout
    outputs += [worker.log_path.read_text(), metrics, stats_text]
    for text in outputs:
        for secret in (password, ADMIN_TOKEN, key, "SECRET-PROMPT-TEXT"):
            assert secret not in text


def test_a_wrong_password_and_clients_without_tls_or_the_ca_are_refused(secure_broker: dict[str, str]) -> None:
    security = read_kafka_security(secure_broker)
    bootstrap = secure_broker["KAFKA_BOOTSTRAP_SERVERS"]
    wrong_password = dataclasses.replace(security, sasl_password=SecretStr("not-the-password"))
    no_tls = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", security.sasl_username, security.sasl_password)
    untrusted_ca = dataclasses.replace(security, ssl_cafile=None)  # the system's CAs did not sign it

    assert asyncio.run(_connects(bootstrap, security))
    for refused in (wrong_password, no_tls, untrusted_ca, None):
        assert not asyncio.run(_connects(bootstrap, refused)), refused
    wrong = cli({**secure_broker, "KAFKA_SASL_PASSWORD": "not-the-password"}, "emit", "-",
                stdin=make_event().model_dump_json() + "\n")
    assert wrong.returncode != 0 and "not-the-password" not in wrong.stdout + wrong.stderr


async def _connects(bootstrap: str, security: KafkaSecurity | None) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **kafka_client_kwargs(security))
    try:
        await asyncio.wait_for(admin.start(), 20)
        return len((await admin.describe_cluster())["brokers"]) > 0
    except Exception:  # noqa: BLE001 - refused, reset, timed out: not connected
        return False
    finally:
        await admin.close()


async def _ingest(config: IngestConfig, key: str, event) -> int:
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(build_app(config))) as client:
        response = await client.post(
            "/v1/events", data=event.model_dump_json(), headers={"Authorization": f"Bearer {key}"}
        )
        return response.status


def _wait_for_events(worker: WorkerProcess, events: int, timeout: float = 120.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        stats = worker.stats()
        if stats["events_accepted"] >= events and sum(stats["dead_letters"].values()) >= 1:
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"worker stats after {timeout} s: {stats}\n{worker.log_tail()}")
        time.sleep(0.5)


def _read(url: str, headers: dict[str, str]) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        return response.read().decode()
