"""The hostile corpus through a real broker and a real worker process, among thousands of good events.

Every bad item must land on the dead-letter topic with its original bytes, its reason and
where it came from (topic, partition, offset, batch index); the report must equal totals
computed independently from the good events alone; and the worker must still be running
and billing afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from producers import KafkaPublisher
from schemas import UsageTrackingEvent
from tests.factories import make_event
from tests.hostile_corpus import HostileCase, build_corpus, corpus_totals
from tests.integration.pipeline_harness import Pipeline, actual_report, expected_report

pytestmark = pytest.mark.integration

PROJECT = "proj-hostile"
PARTITIONS = 4
# The corpus has one message over 4 MiB (the consumer's own limit): the events topic must
# let it through for the worker to see it at all, as a misconfigured cluster would.
LARGE_MESSAGES = 8 * 1024 * 1024
MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("google", "gemini-2.5-flash"), ("openai", "gpt-4o-mini"))


def good_traffic(count: int, *, seed: int) -> list[UsageTrackingEvent]:
    """Valid events over the hostile project and two others, stamped within the last minutes."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events = []
    for i in range(count):
        provider, model = MODELS[i % len(MODELS)]
        input_tokens = rng.randint(1, 20_000)
        output_tokens = rng.randint(0, 3_000)
        events.append(
            make_event(
                project_id=(PROJECT, "proj-calm", "proj-busy")[i % 3],
                agent_name=f"agent-{i % 5}",
                session_id=f"sess-{i % 9}",
                provider=provider,
                model=model,
                timestamp=now - timedelta(seconds=rng.uniform(0, 120)),
                usage={
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "cache_read_tokens": rng.randint(0, input_tokens // 2),
                    "cache_write_tokens": 0,
                    "reasoning_tokens": rng.randint(0, output_tokens),
                },
            )
        )
    return events


def create_events_topic(bootstrap: str, topic: str) -> None:
    """The events topic, made before the worker starts, with room for the oversized message."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            topic_config = {"max.message.bytes": str(LARGE_MESSAGES)}
            await admin.create_topics([NewTopic(topic, PARTITIONS, 1, topic_configs=topic_config)])
        finally:
            await admin.close()

    asyncio.run(go())


def publish_interleaved(pipeline: Pipeline, corpus: list[HostileCase], good: list[UsageTrackingEvent]) -> tuple[int, dict[str, tuple[int, int]]]:
    """Good batches and hostile messages, alternating; returns (messages, case name -> (partition, offset))."""

    async def go() -> tuple[int, dict[str, tuple[int, int]]]:
        where: dict[str, tuple[int, int]] = {}
        messages = 0
        slices = [good[i :: len(corpus)] for i in range(len(corpus))]
        async with KafkaPublisher(pipeline.bootstrap, pipeline.events_topic, max_message_bytes=LARGE_MESSAGES - 100_000) as publisher:
            for case, chunk in zip(corpus, slices, strict=True):
                messages += (await publisher.publish(chunk)).messages
                metadata = await publisher.publish_raw(case.value, case.key)  # type: ignore[arg-type]
                where[case.name] = (metadata.partition, metadata.offset)
                messages += 1
        return messages, where

    return asyncio.run(go())


def assert_reports_exact(pipeline: Pipeline, billed: list[UsageTrackingEvent]) -> None:
    for group_by in ("project", "agent", "session", "model"):
        got = actual_report(pipeline.report_cli(group_by), group_by)
        assert got == expected_report(billed, group_by), f"report --group-by {group_by} differs"


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path) -> Pipeline:
    return Pipeline.fresh(kafka_bootstrap, tmp_path)


def test_hostile_corpus_among_good_traffic(pipeline: Pipeline) -> None:
    corpus = build_corpus(datetime.now(UTC), project=PROJECT)
    totals = corpus_totals(corpus)
    assert len(corpus) >= 30 and totals.letters >= 100
    good = good_traffic(5_000, seed=11)
    billed = good + [UsageTrackingEvent.model_validate(e) for e in totals.good_events]
    create_events_topic(pipeline.bootstrap, pipeline.events_topic)

    with pipeline.worker() as worker:
        messages, where = publish_interleaved(pipeline, corpus, good)
        stats = worker.wait_for_messages(messages, timeout=180)

        # Counted once each, by reason, and billed: exactly the good events.
        assert stats["dead_letters"] == totals.by_reason
        assert stats["events_accepted"] == len(billed)
        assert_reports_exact(pipeline, billed)

        letters = pipeline.dead_letters(expected=totals.letters, timeout=60)
        assert_every_bad_item_dead_lettered(pipeline, corpus, where, letters)

        # Still running and healthy, and still billing.
        assert worker.get("/health")["status"] == "ok"
        later = good_traffic(1_000, seed=12)
        sent = stats["messages"] + pipeline.publish(later)
        after = worker.wait_for_messages(sent)
        assert after["dead_letters"] == totals.by_reason  # nothing new rejected
        assert_reports_exact(pipeline, billed + later)
        worker.raise_if_exited()


def assert_every_bad_item_dead_lettered(
    pipeline: Pipeline, corpus: list[HostileCase], where: dict[str, tuple[int, int]], letters: list[dict[str, Any]]
) -> None:
    by_source: dict[tuple[int, int, int | None], list[dict[str, Any]]] = {}
    for letter in letters:
        source = letter["source"]
        assert source["topic"] == pipeline.events_topic
        by_source.setdefault((source["partition"], source["offset"], source["batch_index"]), []).append(letter)
    assert all(len(found) == 1 for found in by_source.values()), "an input was dead-lettered twice"
    expected_positions = set()
    for case in corpus:
        partition, offset = where[case.name]
        for expected in case.letters:
            position = (partition, offset, expected.index)
            expected_positions.add(position)
            assert position in by_source, f"{case.name}: no dead letter for item {expected.index}"
            (letter,) = by_source[position]
            kept = base64.b64decode(letter["raw_base64"])
            assert letter["reason"] == expected.reason, (case.name, letter["detail"])
            assert letter["detail"]
            assert letter["raw_size"] == len(expected.raw), case.name
            if expected.whole:
                assert kept == expected.raw, f"{case.name}: dead letter bytes differ from what was sent"
                assert letter["raw_truncated"] is False
            else:
                assert expected.raw.startswith(kept) and letter["raw_truncated"] is True, case.name
            assert letter["source"]["key"] == (case.key.decode("utf-8", "replace") if case.key else None)
    assert set(by_source) == expected_positions, "a dead letter no corpus item explains"
