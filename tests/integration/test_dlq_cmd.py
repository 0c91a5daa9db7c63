"""`usage-pipeline dlq inspect|export|replay` against a real broker and a real worker process.

The worker writes the dead letters; the commands read them back, re-submit what now
passes, and take corrected events from a file; the report says each event is billed once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import stream_app.cli as cli
from schemas import UsageTrackingEvent
from tests.factories import OMIT, make_event_dict
from tests.integration.pipeline_harness import Pipeline, actual_report, both_stores, expected_report

pytestmark = pytest.mark.integration

PROJECT = "proj-dlq"
SKEW_SECONDS = 2
FUTURE_SECONDS = 25
DLQ_MODULE = "stream_app.cli.dlq_cmd"

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path: Path, store_server: str | None) -> Pipeline:
    return Pipeline.fresh(kafka_bootstrap, tmp_path, server=store_server)


@pytest.fixture
def usage_pipeline(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `usage-pipeline ARGS...` in this process with the pipeline's settings; (status, stdout, stderr)."""
    if DLQ_MODULE not in cli.COMMAND_MODULES:  # until the command table lists it
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, DLQ_MODULE))
    for name, value in pipeline.env(USAGE_MAX_FUTURE_SKEW_SECONDS=str(SKEW_SECONDS)).items():
        monkeypatch.setenv(name, value)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            status = cli.main(list(argv))
        except SystemExit as exc:  # argparse errors and --help
            status = int(exc.code or 0)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def event(**overrides) -> dict:
    overrides.setdefault("project_id", PROJECT)
    overrides.setdefault("timestamp", datetime.now(UTC) - timedelta(seconds=5))
    return make_event_dict(**overrides)


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def billed_events(pipeline: Pipeline) -> dict[str, int]:
    return {r["project_id"]: r["events"] for r in pipeline.report_cli("project")}


def assert_report_is(pipeline: Pipeline, events: list[dict]) -> None:
    models = [UsageTrackingEvent.model_validate(e) for e in events]
    for group_by in ("project", "model"):
        assert actual_report(pipeline.report_cli(group_by), group_by) == expected_report(models, group_by)


@both_stores
def test_inspect_export_and_replay(pipeline: Pipeline, usage_pipeline: Run, tmp_path: Path) -> None:
    key = PROJECT.encode()
    good = [event() for _ in range(1_000)]
    due_at = datetime.now(UTC) + timedelta(seconds=FUTURE_SECONDS)
    early_alone = event(timestamp=due_at)
    early_in_batch = event(timestamp=due_at)
    batch_good = event()
    misspelled = [event(usage={"input_tokens": OMIT, "input_token": 900, "cache_read_tokens": 0}) for _ in range(3)]
    bad_messages = [
        (key, compact(early_alone)),
        (key, compact([batch_good, early_in_batch, misspelled[0]])),
        (key, compact(misspelled[1])),
        (key, json.dumps(misspelled[2], indent=2).encode()),  # pretty-printed: exported as one line
        (key, b'{"schema_version": 1, "event_id": '),
        (key, compact(event(project_id="proj-elsewhere"))),
    ]
    billed = [*good, batch_good]

    with pipeline.worker(USAGE_MAX_FUTURE_SKEW_SECONDS=str(SKEW_SECONDS)) as worker:
        sent = pipeline.publish([UsageTrackingEvent.model_validate(e) for e in good])
        sent += pipeline.publish_raw(bad_messages)
        worker.wait_for_messages(sent)
        pipeline.dead_letters(expected=7)

        # Replay before the events are due: nothing passes yet, nothing is sent.
        status, out, err = usage_pipeline("dlq", "replay", "--reason", "future_timestamp")
        assert datetime.now(UTC) < due_at - timedelta(seconds=SKEW_SECONDS), "too slow to test 'not yet due'"
        assert status == 1, (out, err)
        assert out.startswith("replayed 0 events from 0 dead letters")
        assert err.count("future_timestamp") == 2
        assert worker.stats()["messages"] == sent
        assert_report_is(pipeline, billed)

        # inspect: by reason, as JSON and as a table.
        status, out, _ = usage_pipeline("dlq", "inspect", "--format", "json", "--limit", "3")
        assert status == 0
        report = json.loads(out)
        assert report["topic"] == pipeline.dlq_topic
        assert (report["dead_letters"], report["distinct_inputs"], report["unreadable"]) == (7, 7, 0)
        counts = {r["reason"]: r["count"] for r in report["reasons"]}
        assert counts == {"invalid_event": 3, "future_timestamp": 2, "invalid_json": 1, "project_key_mismatch": 1}
        invalid = next(r for r in report["reasons"] if r["reason"] == "invalid_event")
        assert "usage.input_token" in invalid["example_detail"]
        assert invalid["first_seen"] <= invalid["last_seen"]
        assert len(report["entries"]) == 3 and all(e["source"]["topic"] == pipeline.events_topic for e in report["entries"])

        status, out, _ = usage_pipeline("dlq", "inspect", "--limit", "2")
        assert status == 0
        assert f"7 dead letters on {pipeline.dlq_topic} (7 distinct inputs)" in out
        assert "future_timestamp" in out and "most recent 2:" in out
        status, out, _ = usage_pipeline("dlq", "inspect", "--reason", "invalid_json", "--format", "json")
        assert json.loads(out)["dead_letters"] == 1

        # Once due: a dry run says what it would do and sends nothing ...
        time.sleep(max(0.0, (due_at - datetime.now(UTC)).total_seconds() - SKEW_SECONDS + 1))
        status, out, err = usage_pipeline("dlq", "replay", "--dry-run")
        assert status == 1  # the other dead letters still fail, and say why
        assert out.startswith(f"would replay 2 events from 2 dead letters to {pipeline.events_topic}")
        assert "published nothing (dry run)" in out and "invalid_event 3" in out
        assert "usage.input_token" in err
        time.sleep(1.5)
        assert worker.stats()["messages"] == sent

        # ... and the real replay bills them.
        status, out, _ = usage_pipeline("dlq", "replay", "--reason", "future_timestamp")
        assert (status, out.split(" to ")[0]) == (0, "replayed 2 events from 2 dead letters")
        sent += 2
        worker.wait_for_messages(sent)
        billed += [early_alone, early_in_batch]
        assert_report_is(pipeline, billed)

        # Replaying again is harmless: received again, billed once.
        status, _, _ = usage_pipeline("dlq", "replay", "--reason", "future_timestamp")
        assert status == 0
        sent += 2
        assert worker.wait_for_messages(sent)["messages"] == sent
        assert_report_is(pipeline, billed)

        # export -> fix -> replay --file
        status, out, err = usage_pipeline("dlq", "export", "--reason", "invalid_event")
        assert status == 0, err
        lines = out.splitlines()
        assert sorted(json.loads(line)["event_id"] for line in lines) == sorted(e["event_id"] for e in misspelled)
        fixed = [line.replace('"input_token"', '"input_tokens"') for line in lines]
        corrected = tmp_path / "corrected.jsonl"
        corrected.write_text("\n".join([*fixed, lines[0], "not json"]) + "\n")

        status, out, err = usage_pipeline("dlq", "replay", "--file", str(corrected), "--dry-run")
        assert status == 1 and out.startswith("would replay 3 events from 3 lines")
        assert "line 4: invalid_event: " in err and "line 5: invalid_json: " in err
        status, out, err = usage_pipeline("dlq", "replay", "--file", str(corrected))
        assert status == 1 and out.startswith("replayed 3 events from 3 lines")
        sent += 3
        worker.wait_for_messages(sent)
        billed += [json.loads(line) for line in fixed]
        assert_report_is(pipeline, billed)

        # The dead letters are still there (replay reads; it never deletes).
        status, out, _ = usage_pipeline("dlq", "inspect", "--format", "json")
        assert json.loads(out)["dead_letters"] == 7


def test_export_of_everything_writes_one_line_per_event_and_lists_what_cannot_be(pipeline: Pipeline, usage_pipeline: Run) -> None:
    key = PROJECT.encode()
    batch = [{"schema_version": 1, "event_id": f"e-{i}"} for i in range(1_001)]
    messages = [(key, compact(batch)), (key, b"\xff\xfe not utf-8"), (key, b"[]")]

    with pipeline.worker() as worker:
        worker.wait_for_messages(pipeline.publish_raw(messages))
        pipeline.dead_letters(expected=3)

    status, out, err = usage_pipeline("dlq", "export")

    assert status == 1
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == [e["event_id"] for e in batch]
    assert "invalid_utf8" in err and "not UTF-8" in err
    assert "exported 1001 events from 3 dead letters; 1 dead letter could not be exported" in err


def test_inspect_of_a_topic_that_does_not_exist(pipeline: Pipeline, usage_pipeline: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USAGE_DLQ_TOPIC", f"{pipeline.dlq_topic}.never-created")

    status, out, _ = usage_pipeline("dlq", "inspect")

    assert status == 0
    assert "does not exist yet" in out


def test_unreachable_kafka_is_a_clear_error(usage_pipeline: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_app.broker.local import find_free_port

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{find_free_port()}")

    status, _, err = usage_pipeline("dlq", "inspect")

    assert status == 2
    assert "usage-pipeline dlq: cannot reach Kafka" in err


def test_replay_file_dry_run_needs_no_broker(usage_pipeline: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event()) + "\n")

    status, out, _ = usage_pipeline("dlq", "replay", "--file", str(path), "--dry-run")

    assert status == 0
    assert out.startswith("would replay 1 event from 1 line")


def test_reason_and_file_together_are_refused(usage_pipeline: Run, tmp_path: Path) -> None:
    status, _, err = usage_pipeline("dlq", "replay", "--file", str(tmp_path / "x"), "--reason", "invalid_event")

    assert status == 2 and "cannot be combined" in err
