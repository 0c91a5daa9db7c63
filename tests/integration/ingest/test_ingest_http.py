"""`ingest-http` against a real broker: 202 only after Kafka has the events, 4xx naming each bad field."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream_app.ingest.keys import KeyFile
from stream_app.ingest.server import IngestConfig, build_app
from tests.factories import make_event_dict
from tests.integration.producers.kafka_reading import read_topic

aiohttp = pytest.importorskip("aiohttp")
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402


def key_file_with(tmp_path: Path, *projects: str) -> tuple[KeyFile, str]:
    """A key file holding one key for `projects`, and that key."""
    key_file = KeyFile(tmp_path / "ingest-keys.json")
    return key_file, key_file.create(list(projects), now=datetime.now(UTC)).key


async def exchange(
    config: IngestConfig, requests: list[tuple[str, str, bytes]], key: str | None = None
) -> list[tuple[int, dict, dict]]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    async with TestClient(TestServer(build_app(config))) as client:
        answers = []
        for method, path, body in requests:
            response = await client.request(method, path, data=body, headers=headers)
            answers.append((response.status, await response.json(), dict(response.headers)))
        return answers


def post(body: object) -> tuple[str, str, bytes]:
    return ("POST", "/v1/events", body if isinstance(body, bytes) else json.dumps(body).encode())


def test_valid_events_are_published_and_invalid_requests_name_each_field(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    key_file, key = key_file_with(tmp_path, "proj-rust", "proj-ts", "proj-acme")
    config = IngestConfig(kafka_bootstrap, topics["events"], key_file, max_body_bytes=64 * 1024)
    single = make_event_dict(project_id="proj-rust")
    batch = [make_event_dict(project_id="proj-ts"), make_event_dict(project_id="proj-ts"), make_event_dict()]
    bad = [make_event_dict(), make_event_dict(usage={"output_tokens": "many"})]

    answers = asyncio.run(exchange(config, [
        post(single), post(batch), post(bad), post(b"{not json"),
        post([make_event_dict()] * 1001), post(b"[" + b" " * 70_000 + b"]"),
        ("GET", "/healthz", b""), ("GET", "/v1/schema", b""),
    ], key))

    (s1, a1, _), (s2, a2, _), (s3, a3, _), (s4, _, _), (s5, _, _), (s6, a6, _), (s7, a7, _), (s8, a8, _) = answers
    assert (s1, a1) == (202, {"accepted": 1, "event_ids": [single["event_id"]]})
    assert (s2, a2["event_ids"]) == (202, [item["event_id"] for item in batch])
    assert s3 == 422 and a3["problems"] == [
        {"index": 1, "field": "usage.output_tokens", "message": "Input should be a valid integer"}]
    assert (s4, s5, s6) == (400, 413, 413) and "at most 65536 bytes" in a6["error"]
    assert (s7, a7["kafka"]) == (200, "connected") and s8 == 200 and a8["title"] == "UsageTrackingEvent"

    delivered = read_topic(kafka_bootstrap, topics["events"], min_events=4)
    assert Counter(delivered.event_ids) == Counter([single["event_id"], *(item["event_id"] for item in batch)])


def test_kafka_unreachable_is_a_503_to_retry_never_a_false_202(tmp_path: Path) -> None:
    key_file, key = key_file_with(tmp_path, "proj-acme")
    config = IngestConfig("127.0.0.1:9", "t.events", key_file)

    (status, answer, headers), = asyncio.run(exchange(config, [post(make_event_dict())], key))

    assert status == 503 and headers["Retry-After"] == "5" and "resend the same events" in answer["error"]
