"""Who may read, reprice and bill, against a real broker and a real worker process.

Attacks tried: reading totals and stats without the admin token or with a wrong one, a
cross-site form POST to /reprice, listening on 0.0.0.0 without a token, writing events for
another project with a valid key, writing with no/unknown/revoked keys, a replication
factor the cluster cannot hold, and a ClickHouse password provoked into an error message.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream_app.broker.topics import ensure_topics_sync
from stream_app.errors import ConfigurationError
from stream_app.ingest.keys import KeyFile
from stream_app.ingest.server import IngestConfig, build_app
from tests.factories import make_event
from tests.integration.pipeline_harness import Pipeline
from tests.integration.producers.kafka_reading import read_topic

TOKEN = "admin-" + "Q7x" * 12
CLICKHOUSE_PASSWORD = "ch-pass-Wz91-never-printed"


def http(url: str, *, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_app", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_the_worker_pages_need_the_admin_token_and_refuse_form_posts(kafka_bootstrap: str, tmp_path: Path) -> None:
    pipeline = Pipeline.fresh(kafka_bootstrap, tmp_path)
    events = [make_event(project_id="proj-a") for _ in range(3)]
    with pipeline.worker(USAGE_ADMIN_TOKEN=TOKEN, USAGE_LOG_LEVEL="debug") as worker:
        pipeline.publish(events)
        worker.wait_for_messages(1)
        base, auth = worker.url, {"Authorization": f"Bearer {TOKEN}"}

        assert http(f"{base}/health")[0] == 200 and http(f"{base}/metrics")[0] == 200
        for path in ("/stats", "/report", "/prices/missing", "/dashboard"):
            assert http(f"{base}{path}")[0] == 401, path
            assert http(f"{base}{path}", headers={"Authorization": f"Bearer {TOKEN[:-1]}y"})[0] == 401, path
        assert http(f"{base}/stats", headers=auth)[0] == 200
        # A page in the operator's browser can POST a form cross-site, with no preflight.
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        reprice = b'{"since": "2020-01-01", "until": "2030-01-01"}'
        assert http(f"{base}/reprice", method="POST", headers=form, body=reprice)[0] == 401
        assert http(f"{base}/reprice", method="POST", headers={**auth, "Content-Type": "text/plain"}, body=reprice)[0] == 415

        with_token = cli({**pipeline.env(), "USAGE_ADMIN_TOKEN": TOKEN}, "report", "--format", "json")
        without = cli(pipeline.env(), "report", "--format", "json")
        metrics = http(f"{base}/metrics")[1]
        stats = http(f"{base}/stats", headers=auth)[1]
    assert with_token.returncode == 0, with_token.stderr
    assert {row["project_id"] for row in json.loads(with_token.stdout)} == {"proj-a"}
    assert without.returncode != 0 and "401" in without.stderr
    for text in (worker.log_path.read_text(), metrics, stats, with_token.stdout, with_token.stderr):
        assert TOKEN not in text


def test_a_worker_will_not_listen_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    result = cli(
        {"USAGE_PIPELINE_HOME": str(tmp_path), "USAGE_WORKER_WEB_HOST": "0.0.0.0", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
        "worker",
    )

    assert result.returncode == 2 and "USAGE_ADMIN_TOKEN" in result.stderr and "0.0.0.0" in result.stderr


def test_a_clickhouse_password_never_reaches_an_error_or_a_log(tmp_path: Path) -> None:
    env = {
        "USAGE_PIPELINE_HOME": str(tmp_path),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "USAGE_LOG_LEVEL": "debug",
    }
    unreachable = cli({**env, "CLICKHOUSE_URL": f"http://billing:{CLICKHOUSE_PASSWORD}@127.0.0.1:9/usage"}, "report")
    bad_scheme = cli({**env, "CLICKHOUSE_URL": f"ftp://billing:{CLICKHOUSE_PASSWORD}@h/usage"}, "report")

    assert unreachable.returncode == 2 and "billing:***@" not in unreachable.stdout
    assert "CLICKHOUSE_URL" in bad_scheme.stderr
    for result in (unreachable, bad_scheme):
        assert CLICKHOUSE_PASSWORD not in result.stdout + result.stderr


def test_ingest_bills_only_the_projects_of_its_key(kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    key_file = KeyFile(tmp_path / "keys.json")
    mine = key_file.create(["proj-mine"], now=datetime.now(UTC))
    revoked = key_file.create(["proj-mine"], now=datetime.now(UTC))
    key_file.revoke(revoked.stored.key_id, now=datetime.now(UTC))
    config = IngestConfig(kafka_bootstrap, topics["events"], key_file)
    own = make_event(project_id="proj-mine")
    theirs = make_event(project_id="proj-theirs")
    mixed = [json.loads(own.model_dump_json()), json.loads(theirs.model_dump_json())]
    single = json.loads(make_event(project_id="proj-mine").model_dump_json())

    async def go() -> list[tuple[int, dict]]:
        answers = []
        async with TestClient(TestServer(build_app(config))) as client:
            for key, body in ((None, single), ("upk_00000000_" + "A" * 43, single), (revoked.key, single),
                              (mine.key, mixed), (mine.key, single)):
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                response = await client.post("/v1/events", json=body, headers=headers)
                answers.append((response.status, await response.json()))
        return answers

    answers = asyncio.run(go())

    assert [status for status, _ in answers] == [401, 401, 401, 403, 202]
    assert "'proj-theirs'" in answers[3][1]["error"] and "nothing" in answers[3][1]["error"]
    delivered = read_topic(kafka_bootstrap, topics["events"], min_events=1)
    assert delivered.event_ids == [single["event_id"]]  # nothing of the refused request


def test_a_replication_factor_larger_than_the_cluster_names_the_setting(kafka_bootstrap: str) -> None:
    with pytest.raises(ConfigurationError, match=r"USAGE_TOPIC_REPLICATION_FACTOR=3 .* 1 broker"):
        ensure_topics_sync(kafka_bootstrap, {"test.replication.refused": 1}, replication_factor=3)
