"""A service that exits without flushing loses nothing: atexit delivers, or spools for the next run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from producers.spool import EventSpool
from tests.integration.producers.kafka_reading import read_topic

ROOT = Path(__file__).resolve().parents[3]


def run_service(bootstrap: str, topic: str, spool_dir: Path, calls: int) -> list[str]:
    """A short-lived 'service' making `calls` tracked calls, then exiting at once; their event ids."""
    code = textwrap.dedent(
        f"""
        from producers import configure_usage_tracking, track_llm_call
        configure_usage_tracking(bootstrap_servers={bootstrap!r}, topic={topic!r}, spool_dir={str(spool_dir)!r},
                                 source="cron-job", project_id="proj-exit")
        for _ in range({calls}):
            with track_llm_call("nightly", provider="openai", model="gpt-4o-mini") as call:
                call.set_usage(input_tokens=100, output_tokens=10)
                print(call.event_id)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_events_of_a_process_that_just_exits_are_delivered(kafka_bootstrap: str, topics: dict[str, str],
                                                           tmp_path: Path) -> None:
    ids = run_service(kafka_bootstrap, topics["events"], tmp_path / "spool", calls=300)

    delivered = read_topic(kafka_bootstrap, topics["events"], min_events=300)

    assert Counter(delivered.event_ids) == Counter(ids)


def test_with_kafka_away_at_exit_the_events_wait_in_the_spool(tmp_path: Path) -> None:
    ids = run_service("127.0.0.1:9", "t.events", tmp_path / "spool", calls=300)

    spool = EventSpool(tmp_path / "spool")
    spooled = []
    while (segment := spool.claim()) is not None:
        spooled += [event.event_id for event in spool.read(segment).events]

    assert sorted(spooled) == sorted(ids)
