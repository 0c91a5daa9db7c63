"""The TypeScript producer end to end: AI SDK calls (mock model) -> ingest-http or Kafka -> worker -> report.

A Node program (producers/typescript/e2e/run-scenario.ts) makes generate, stream,
aborted-stream and tool-loop calls through `wrapLanguageModel` + `usageTrackingMiddleware`.
Its events go through a real `usage-pipeline ingest-http` (with an API key from
`usage-pipeline keys create`) or straight to the real Kafka broker; a real worker bills
them. The expected usage of every event is derived here from the scenario spec alone, and
`report` must equal the totals computed independently from the events (pipeline_harness).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from schemas import UsageTrackingEvent
from stream_app.broker.local import find_free_port
from tests.integration.pipeline_harness import Pipeline, actual_report, expected_report, wait_until_billed
from tests.integration.producers.kafka_reading import read_topic
from tests.npm_package import ensure_built, require_node

GROUPS = ("project", "agent", "session", "model")


def v3_usage(inp: int, out: int, *, cache_read: int = 0, cache_write: int = 0, reasoning: int = 0) -> dict[str, Any]:
    """Usage as an AI SDK 6 provider reports it to middleware (LanguageModelV3Usage)."""
    return {
        "inputTokens": {"total": inp, "noCache": inp - cache_read - cache_write, "cacheRead": cache_read, "cacheWrite": cache_write},
        "outputTokens": {"total": out, "text": out - reasoning, "reasoning": reasoning},
    }


def scenario_calls() -> list[dict[str, Any]]:
    return [
        {"kind": "generate", "agent": "triage", "session": "sess-1", "provider": "openai.chat", "model": "gpt-4o-mini",
         "usage": v3_usage(2006, 300, cache_read=1920, reasoning=0)},
        {"kind": "generate", "agent": "billing", "handoff_from": "triage", "session": "sess-1", "provider": "openai.responses",
         "model": "o4-mini", "usage": v3_usage(1200, 900, cache_read=1024, reasoning=640)},
        {"kind": "stream", "agent": "writer", "session": "sess-2", "provider": "anthropic.messages", "model": "claude-haiku-4-5",
         "usage": v3_usage(4512, 320, cache_read=3000, cache_write=1500)},
        {"kind": "aborted_stream", "agent": "writer", "session": "sess-2", "provider": "anthropic.messages",
         "model": "claude-haiku-4-5", "usage": v3_usage(40, 500)},
        {"kind": "tool_loop", "agent": "orders", "session": "sess-3", "provider": "google.generative-ai", "model": "gemini-2.5-flash",
         "steps": [v3_usage(100, 20), v3_usage(160, 30, cache_read=100)]},
    ]


def expected_wire_usage(usage: dict[str, Any]) -> dict[str, int]:
    """SPEC §1's usage for an AI SDK 6 usage object: inputs include cache, outputs reasoning."""
    return {
        "input_tokens": usage["inputTokens"]["total"], "output_tokens": usage["outputTokens"]["total"],
        "cache_read_tokens": usage["inputTokens"]["cacheRead"], "cache_write_tokens": usage["inputTokens"]["cacheWrite"],
        "reasoning_tokens": usage["outputTokens"]["reasoning"],
    }


ZERO = dict.fromkeys(("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"), 0)


def expected_events(calls: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, int]]]:
    """(agent, method, usage) per event the scenario must produce, in order."""
    out = []
    for call in calls:
        if call["kind"] == "generate":
            out.append((call["agent"], "generate", expected_wire_usage(call["usage"])))
        elif call["kind"] == "stream":
            out.append((call["agent"], "stream", expected_wire_usage(call["usage"])))
        elif call["kind"] == "aborted_stream":
            out.append((call["agent"], "stream", ZERO))  # partial: the usage never arrived
        else:
            out.extend((call["agent"], "generate", expected_wire_usage(step)) for step in call["steps"])
    return out


def run_scenario(package: Path, tmp_path: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    spec_path, events_path = tmp_path / "spec.json", tmp_path / "events.jsonl"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run(
        [require_node(), str(package / "build" / "e2e" / "run-scenario.js"), str(spec_path), str(events_path)],
        cwd=package, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, f"scenario failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return [json.loads(line) for line in events_path.read_text().splitlines()]


def check_events(emitted: list[dict[str, Any]], calls: list[dict[str, Any]], project: str) -> list[UsageTrackingEvent]:
    want = expected_events(calls)
    got = [(e["agent_name"], e["method"], e["usage"]) for e in emitted]
    assert got == want
    events = [UsageTrackingEvent.model_validate(e) for e in emitted]
    assert {e.project_id for e in events} == {project}
    assert len({e.event_id for e in events}) == len(events) and [e.event_id for e in events] == sorted(e.event_id for e in events)
    by_agent = {e.agent_name: e for e in events}
    assert by_agent["billing"].handoff_chain == ["triage", "billing"] and by_agent["billing"].provider == "openai"
    aborted = [e for e in events if e.provider_metadata.get("stream_aborted")]
    assert len(aborted) == 1 and aborted[0].error.startswith("stream aborted after")
    loop = [e for e in events if e.agent_name == "orders"]
    assert [e.operation for e in loop] == ["resolve_order"] * 2 and loop[0].provider == "google"
    assert [t.name for t in loop[0].tool_calls] == ["lookupOrder"] and loop[0].tool_calls[0].duration_ms is not None
    return events


def assert_report_exact(pipeline: Pipeline, events: list[UsageTrackingEvent]) -> None:
    for group_by in GROUPS:
        assert actual_report(pipeline.report_cli(group_by), group_by) == expected_report(events, group_by), group_by


@pytest.fixture(scope="module")
def package() -> Path:
    return ensure_built()


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path: Path) -> Pipeline:
    return Pipeline.fresh(kafka_bootstrap, tmp_path)


class IngestServer:
    """`usage-pipeline ingest-http` in its own process; stopped on exit, also on failure."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = find_free_port()
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> IngestServer:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stream_app", "ingest-http", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"ingest-http did not answer:\n{self.log_path.read_text()}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def create_api_key(env: dict[str, str], project: str) -> str:
    """`usage-pipeline keys create --project P`, as an operator runs it; the key is its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "stream_app", "keys", "create", "--project", project],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_ai_sdk_calls_through_ingest_http_are_billed_exactly(package: Path, pipeline: Pipeline, tmp_path: Path) -> None:
    project, calls = "proj-ts-http", scenario_calls()
    env = pipeline.env(USAGE_INGEST_KEYS_FILE=str(tmp_path / "ingest-keys.json"))
    api_key = create_api_key(env, project)

    with pipeline.worker() as worker, IngestServer(env, tmp_path / "ingest.log") as ingest:
        emitted = run_scenario(package, tmp_path, {
            "project": project, "source": "dashboard-ts", "calls": calls, "http": {"url": ingest.url, "apiKey": api_key},
        })
        events = check_events(emitted, calls, project)
        wait_until_billed(pipeline, worker, len(events))
        assert_report_exact(pipeline, events)


def test_a_key_for_another_project_is_refused_and_reported(package: Path, pipeline: Pipeline, tmp_path: Path) -> None:
    env = pipeline.env(USAGE_INGEST_KEYS_FILE=str(tmp_path / "ingest-keys.json"))
    other_key = create_api_key(env, "proj-someone-else")
    with IngestServer(env, tmp_path / "ingest.log") as ingest:
        spec_path, events_path = tmp_path / "spec.json", tmp_path / "events.jsonl"
        spec_path.write_text(json.dumps({"project": "proj-ts-http", "source": "dashboard-ts", "calls": scenario_calls()[:1],
                                         "http": {"url": ingest.url, "apiKey": other_key}}))
        done = subprocess.run([require_node(), str(package / "build" / "e2e" / "run-scenario.js"), str(spec_path), str(events_path)],
                              cwd=package, capture_output=True, text=True, timeout=120)
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 1 and outcome["stats"]["rejected"] == 1 and outcome["stats"]["delivered"] == 0
    assert "403" in outcome["errors"][0] and "proj-ts-http" in outcome["errors"][0] and other_key not in done.stdout + done.stderr


def test_ai_sdk_calls_through_kafka_are_billed_exactly_in_per_project_batches(package: Path, pipeline: Pipeline, tmp_path: Path) -> None:
    project, calls = "proj-ts-kafka", scenario_calls()

    with pipeline.worker() as worker:
        emitted = run_scenario(package, tmp_path, {
            "project": project, "source": "agents-ts", "calls": calls,
            "kafka": {"bootstrapServers": pipeline.bootstrap, "topic": pipeline.events_topic},
        })
        events = check_events(emitted, calls, project)
        wait_until_billed(pipeline, worker, len(events))
        assert_report_exact(pipeline, events)

    delivered = read_topic(pipeline.bootstrap, pipeline.events_topic, min_events=len(events))
    # SPEC §1: JSON arrays of one project's events, keyed by project_id; each event once.
    assert {key for key, _batch in delivered.messages} == {project}
    assert Counter(delivered.event_ids) == Counter(e.event_id for e in events)
