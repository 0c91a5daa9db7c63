"""The worker's write path (`ChunkProcessor` + `ClickHouseSink`) on the real engine, no Kafka.

Messages are handed to the chunk processor as Kafka would deliver them (value, topic,
partition, offset), so look-ups, billed-copy decisions, window rows and reports all run
for real. Every expected total below is worked out by hand from the bundled genai-prices
catalog (per million tokens): gpt-4o input $2.50, cached input $1.25, output $10;
gpt-5-nano input $0.05. One process can open one chDB directory at a time, so every sink
a test opens is closed by the `open_sink` fixture before the next test opens another.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import UsageTrackingEvent
from stream_app.core.decode import MessageOrigin
from stream_app.core.pricing import price_event
from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url
from stream_app.sink.faults import FaultPlan, parse_fault_plan
from stream_app.sink.queries import ReportQuery
from stream_app.sink.schema import quote_string
from stream_app.worker.chunk import ChunkOutcome, ChunkProcessor, RetryPolicy
from stream_app.worker.metrics import WorkerMetrics
from tests.factories import make_event, make_event_dict

pytestmark = pytest.mark.integration

WINDOW = 60
TOPIC = "llm.usage.events"
PROJECT = "proj-acme"
W = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a window start
W2 = W + timedelta(seconds=WINDOW)

_offsets = itertools.count(1_000)


OpenSink = Callable[..., ClickHouseSink]


@pytest.fixture
def open_sink(tmp_path: Path) -> Iterator[OpenSink]:
    """Open sinks on directories under tmp_path; every one is closed when the test ends."""
    opened: list[ClickHouseSink] = []

    def _open(directory: str = "ch", *, query: str = "", **kwargs) -> ClickHouseSink:
        sink = ClickHouseSink(parse_clickhouse_url(f"chdb://{tmp_path / directory}{query}"), window_seconds=WINDOW, **kwargs)
        opened.append(sink)  # before open(): a failed open still holds the store
        return sink.open()

    yield _open
    for sink in opened:
        sink.close()


@pytest.fixture
def sink(open_sink: OpenSink) -> ClickHouseSink:
    return open_sink()


def event(
    *,
    at: datetime,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    reasoning_tokens: int = 0,
    model: str = "gpt-4o",
    agent: str = "planner",
    session: str | None = "s1",
    project: str = PROJECT,
    **overrides,
) -> UsageTrackingEvent:
    return make_event(
        timestamp=at,
        project_id=project,
        agent_name=agent,
        session_id=session,
        provider="openai",
        model=model,
        usage={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": 0,
            "reasoning_tokens": reasoning_tokens,
        },
        **overrides,
    )


Message = tuple[bytes, MessageOrigin]


def messages_of(events: list[UsageTrackingEvent], bad: int = 0) -> list[Message]:
    """Each event its own message at a fresh offset (as a producer retry would send it), plus `bad` malformed ones."""
    out = [(e.model_dump_json().encode(), MessageOrigin(TOPIC, 0, next(_offsets), e.project_id.encode())) for e in events]
    out += [(b"{", MessageOrigin(TOPIC, 0, next(_offsets), PROJECT.encode())) for _ in range(bad)]
    return out


def process(sink: ClickHouseSink, messages: list[Message], max_identities: int | None = None, **retry) -> ChunkOutcome:
    """One chunk through the worker's own processor (retries fast, isolates after 5 refusals)."""
    policy = RetryPolicy(**{"initial_seconds": 0.01, "max_seconds": 0.05, **retry})
    bound = {} if max_identities is None else {"max_identities_per_write": max_identities}
    processor = ChunkProcessor(
        sink, WorkerMetrics(), window_seconds=WINDOW, max_future_skew=timedelta(days=3650), consumer_group="test",
        retry=policy, **bound,
    )
    return processor.process(messages)


def write(sink: ClickHouseSink, events: list[UsageTrackingEvent], bad: int = 0) -> ChunkOutcome:
    return process(sink, messages_of(events, bad))


def report(sink: ClickHouseSink, group_by: str = "project", **filters) -> list[dict]:
    return sink.report(ReportQuery(group_by, **filters))


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def windows(sink: ClickHouseSink, project: str = PROJECT) -> dict[tuple, tuple]:
    """Window totals (summed over their source partitions) as {(grouping, agent, session, model, start):
    (events, in, out, cache_read, cache_write, reasoning, cost, unpriced)}; empty windows left out.

    Also checks that the hour and day cells hold exactly the sums of their windows."""
    by_level = {level: _cells(sink, project, level) for level in (WINDOW, 3600, 86_400)}
    for level in (3600, 86_400):
        rolled: dict[tuple, list] = {}
        for (grouping, agent, session, model, start), totals in by_level[WINDOW].items():
            at = start.replace(minute=0, second=0) if level == 3600 else start.replace(hour=0, minute=0, second=0)
            acc = rolled.setdefault((grouping, agent, session, model, at), [0] * len(totals))
            for i, value in enumerate(totals):
                acc[i] += value
        assert {k: tuple(v) for k, v in rolled.items()} == by_level[level], f"the {level} s cells differ from their windows"
    return by_level[WINDOW]


def _cells(sink: ClickHouseSink, project: str, level: int) -> dict[tuple, tuple]:
    rows = sink.query_rows(
        "SELECT grouping, agent_name, session_id, model, window_start, sum(events), sum(input_tokens), sum(output_tokens), "
        "sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_usd), sum(unpriced_events) "
        f"FROM usage.usage_window_cells FINAL WHERE project_id = {quote_string(project)} AND level = {level} "
        "GROUP BY grouping, agent_name, session_id, model, window_start"
    )
    return {
        (grouping, agent, session, model, _naive_utc(start)): tuple(totals)
        for grouping, agent, session, model, start, *totals in rows
        if totals[0]
    }


def key(grouping: str, start: datetime, agent: str = "", session: str = "", model: str = "") -> tuple:
    return (grouping, agent, session, model, _naive_utc(start))


def totals(events: int, inp: int, out: int, cost: str, *, cache_read: int = 0, reasoning: int = 0, unpriced: int = 0) -> tuple:
    return (events, inp, out, cache_read, 0, reasoning, Decimal(cost), unpriced)


def project_record(events: int, inp: int, out: int, cost: str, *, cache_read: int = 0, reasoning: int = 0, unpriced: int = 0, project: str = PROJECT) -> dict:
    return {
        "project_id": project, "events": events, "input_tokens": inp, "output_tokens": out,
        "cache_read_tokens": cache_read, "cache_write_tokens": 0, "reasoning_tokens": reasoning,
        "cost_usd": cost, "unpriced_events": unpriced,
    }


# --- the hand-computed data set --------------------------------------------------------------
#
#  e1 planner s1   12:00:10 gpt-4o in 1000 (200 cached) out 100   800*2.5 + 200*1.25 + 100*10 = 3250 µ$
#  e2 planner s2   12:00:20 gpt-4o in 2000 out 500 (100 reasoning) 2000*2.5 + 500*10        = 10000 µ$
#  e3 coder   -    12:00:30 gpt-4o in 400 out 40                   400*2.5 + 40*10           = 1400 µ$
#  e4 coder   s1   12:00:40 unknown model in 10 out 5                                        = unpriced
#  e5 planner s1   12:01:10 gpt-4o in 100 out 10                   100*2.5 + 10*10           = 350 µ$


def data_set() -> list[UsageTrackingEvent]:
    return [
        event(at=W + timedelta(seconds=10), input_tokens=1000, cache_read_tokens=200, output_tokens=100),
        event(at=W + timedelta(seconds=20), input_tokens=2000, output_tokens=500, reasoning_tokens=100, session="s2"),
        event(at=W + timedelta(seconds=30), input_tokens=400, output_tokens=40, agent="coder", session=None),
        event(at=W + timedelta(seconds=40), input_tokens=10, output_tokens=5, agent="coder", model="no-such-model"),
        event(at=W2 + timedelta(seconds=10), input_tokens=100, output_tokens=10),
    ]


EXPECTED_WINDOWS = {
    key("project", W): totals(4, 3410, 645, "0.01465", cache_read=200, reasoning=100, unpriced=1),
    key("agent", W, agent="planner"): totals(2, 3000, 600, "0.01325", cache_read=200, reasoning=100),
    key("agent", W, agent="coder"): totals(2, 410, 45, "0.0014", unpriced=1),
    key("session", W, session="s1"): totals(2, 1010, 105, "0.00325", cache_read=200, unpriced=1),
    key("session", W, session="s2"): totals(1, 2000, 500, "0.01", reasoning=100),
    key("session", W): totals(1, 400, 40, "0.0014"),  # e3 has no session
    key("model", W, model="gpt-4o"): totals(3, 3400, 640, "0.01465", cache_read=200, reasoning=100),
    key("model", W, model="no-such-model"): totals(1, 10, 5, "0", unpriced=1),
    key("project", W2): totals(1, 100, 10, "0.00035"),
    key("agent", W2, agent="planner"): totals(1, 100, 10, "0.00035"),
    key("session", W2, session="s1"): totals(1, 100, 10, "0.00035"),
    key("model", W2, model="gpt-4o"): totals(1, 100, 10, "0.00035"),
}


# --- schema -----------------------------------------------------------------------------------


def test_migrations_are_idempotent(open_sink):
    first = open_sink("ch")
    assert sorted(first.query_rows("SELECT version FROM usage.schema_migrations FINAL")) == [(1,), (2,), (3,), (4,)]
    assert first.migrate() == []
    write(first, [event(at=W, input_tokens=1000, output_tokens=0)])
    first.close()

    second = open_sink("ch")

    assert second.migrate() == []
    # Without FINAL: the second open inserted no second migration record.
    assert sorted(v for v, _d in second.query_rows("SELECT version, description FROM usage.schema_migrations")) == [1, 2, 3, 4]
    tables = sorted(r[0] for r in second.query_rows("SELECT name FROM system.tables WHERE database = 'usage'"))
    # The open sink's two private look-up tables (the first sink dropped its own on close).
    assert [t for t in tables if t.startswith("_keys_")] == sorted([second._keys.cells_table, second._keys.events_table])
    assert [t for t in tables if not t.startswith("_keys_")] == [
        "schema_migrations", "store_info", "usage_events", "usage_rejections", "usage_tool_windows", "usage_window_cells",
    ]
    # The data written before the reopen is still there: 1000 * 2.5/M.
    assert report(second) == [project_record(1, 1000, 0, "0.0025")]


# --- exactly-once totals --------------------------------------------------------------------


def test_processing_the_same_messages_twice_gives_identical_totals(sink):
    messages = messages_of(data_set(), bad=2)

    first_outcome = process(sink, messages)
    first = {g: report(sink, g) for g in ("project", "agent", "session", "model")}
    first_windows = windows(sink)
    again = process(sink, messages)  # a replay after a crash before the commit

    assert (first_outcome.rows.events, again.rows.events, again.duplicates) == (5, 5, 0)  # the billed copies, rewritten
    assert {g: report(sink, g) for g in ("project", "agent", "session", "model")} == first
    assert windows(sink) == first_windows == EXPECTED_WINDOWS
    assert first["project"] == [project_record(5, 3510, 655, "0.015", cache_read=200, reasoning=100, unpriced=1)]
    assert sink.query_rows("SELECT count() FROM usage.usage_events FINAL") == [(5,)]
    assert sink.query_rows("SELECT count() FROM usage.usage_rejections FINAL") == [(2,)]


def test_same_event_id_in_two_chunks_is_billed_once(sink):
    # e: 1000 in (200 cached) + 100 out = 0.00325; other: 2000 * 2.5/M = 0.005
    e = event(at=W + timedelta(seconds=5), input_tokens=1000, cache_read_tokens=200, output_tokens=100)
    other = event(at=W + timedelta(seconds=6), input_tokens=2000, output_tokens=0, session="s2")

    write(sink, [e, other])
    resent = write(sink, [e])  # the producer retried: same event, later offset

    assert (resent.rows.events, resent.duplicates, resent.dead_letters) == (0, 1, [])
    assert report(sink) == [project_record(2, 3000, 100, "0.00825", cache_read=200)]
    assert [r["events"] for r in report(sink, "session")] == [1, 1]
    assert report(sink, "model")[0]["events"] == 2
    assert windows(sink)[key("project", W)] == totals(2, 3000, 100, "0.00825", cache_read=200)
    assert windows(sink)[key("session", W, session="s1")] == totals(1, 1000, 100, "0.00325", cache_read=200)


def test_a_changed_resend_is_dead_lettered_and_changes_no_window(sink):
    e = event(at=W + timedelta(seconds=5), input_tokens=1000, output_tokens=0)  # 0.0025
    write(sink, [e])
    before = (report(sink), windows(sink))
    moved = e.model_copy(update={"timestamp": W2 + timedelta(seconds=5), "agent_name": "coder"})

    outcome = write(sink, [moved])

    (letter,) = [json.loads(v) for _k, v in outcome.dead_letters]
    assert letter["reason"] == "conflicting_duplicate"
    assert letter["detail"].endswith("this copy differs in: timestamp, agent_name")
    assert json.loads(letter["raw_text"])["agent_name"] == "coder"
    assert (report(sink), windows(sink)) == before
    assert report(sink, every=WINDOW) == [{**project_record(1, 1000, 0, "0.0025"), "window_start": "2026-11-22T12:00:00Z"}]


def test_late_event_updates_its_window_exactly(sink):
    # chunk 1: 12:00:10 (1000 in = 0.0025) and 12:00:20 (100 out = 0.001)
    write(sink, [
        event(at=W + timedelta(seconds=10), input_tokens=1000, output_tokens=0),
        event(at=W + timedelta(seconds=20), input_tokens=0, output_tokens=100, agent="coder"),
    ])
    assert windows(sink)[key("project", W)] == totals(2, 1000, 100, "0.0035")

    # chunk 2, later: a new window, and an event of the first window arriving late
    # (12:00:50, 400 in + 40 out = 0.001 + 0.0004)
    write(sink, [
        event(at=W2 + timedelta(seconds=1), input_tokens=100, output_tokens=10),
        event(at=W + timedelta(seconds=50), input_tokens=400, output_tokens=40, agent="coder", session="s9"),
    ])

    assert windows(sink) == {
        key("project", W): totals(3, 1400, 140, "0.0049"),
        key("agent", W, agent="planner"): totals(1, 1000, 0, "0.0025"),
        key("agent", W, agent="coder"): totals(2, 400, 140, "0.0024"),
        key("session", W, session="s1"): totals(2, 1000, 100, "0.0035"),
        key("session", W, session="s9"): totals(1, 400, 40, "0.0014"),
        key("model", W, model="gpt-4o"): totals(3, 1400, 140, "0.0049"),
        key("project", W2): totals(1, 100, 10, "0.00035"),
        key("agent", W2, agent="planner"): totals(1, 100, 10, "0.00035"),
        key("session", W2, session="s1"): totals(1, 100, 10, "0.00035"),
        key("model", W2, model="gpt-4o"): totals(1, 100, 10, "0.00035"),
    }


def test_window_rows_equal_hand_computed_sums(sink):
    write(sink, data_set())

    assert windows(sink) == EXPECTED_WINDOWS
    assert sorted(sink.query_rows("SELECT DISTINCT level FROM usage.usage_window_cells FINAL")) == [(WINDOW,), (3600,), (86_400,)]


def test_window_rows_are_the_same_when_the_events_come_one_chunk_at_a_time(sink):
    for e in data_set():
        write(sink, [e])

    assert windows(sink) == EXPECTED_WINDOWS


def test_a_chunk_written_in_runs_of_few_sessions_gives_the_same_windows(sink):
    # A chunk from many sessions is written a few identities at a time (bounded memory):
    # here one per run, so every message is a write of its own, and a re-send of the
    # first event, later in the same chunk, lands in another run than its original.
    events = data_set()
    messages = messages_of([*events, events[0]], bad=1)

    outcome = process(sink, messages, max_identities=1)

    assert (outcome.rows.events, outcome.duplicates, len(outcome.dead_letters)) == (len(events), 1, 1)
    assert windows(sink) == EXPECTED_WINDOWS
    assert [r["events"] for r in report(sink)] == [len(events)]
    assert sink.query_rows("SELECT count() FROM usage.usage_events FINAL") == [(len(events),)]


def test_a_batch_message_is_one_contribution_per_window(sink):
    batch = json.dumps([e.wire_dict() for e in data_set()]).encode()

    process(sink, [(batch, MessageOrigin(TOPIC, 3, 77, PROJECT.encode()))])

    assert windows(sink) == EXPECTED_WINDOWS
    # One partition, covered up to just past the message.
    sources = sink.query_rows("SELECT DISTINCT src_partition, covered_until FROM usage.usage_window_cells FINAL")
    assert sources == [(3, 78)]


def test_a_backfill_of_thirty_days_in_one_chunk(sink):
    # One event per hour for 30 days, all in one chunk of 720 messages: every look-up and
    # insert stays bounded, and each window gets exactly its event.
    start = W.replace(hour=0) - timedelta(days=30)  # a UTC midnight: day buckets hold 24 each
    backfill = [event(at=start + timedelta(hours=h, seconds=1), input_tokens=1000, output_tokens=0, session=None) for h in range(720)]

    outcome = write(sink, backfill)

    assert (outcome.rows.events, outcome.attempts) == (720, 1)
    assert report(sink) == [project_record(720, 720_000, 0, "1.8")]
    daily = report(sink, every=86_400, since=start, until=start + timedelta(days=30))
    assert [r["events"] for r in daily] == [24] * 30
    assert {r["cost_usd"] for r in daily} == {"0.06"}
    assert write(sink, backfill).duplicates == 720  # a replay of the month changes nothing
    assert report(sink) == [project_record(720, 720_000, 0, "1.8")]


def test_reports_equal_hand_computed_sums(sink):
    write(sink, data_set())

    assert report(sink, "agent") == [
        {"project_id": PROJECT, "agent_name": "planner", "events": 3, "input_tokens": 3100, "output_tokens": 610,
         "cache_read_tokens": 200, "cache_write_tokens": 0, "reasoning_tokens": 100, "cost_usd": "0.0136", "unpriced_events": 0},
        {"project_id": PROJECT, "agent_name": "coder", "events": 2, "input_tokens": 410, "output_tokens": 45,
         "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": "0.0014", "unpriced_events": 1},
    ]
    assert [(r["session_id"], r["events"], r["cost_usd"], r["unpriced_events"]) for r in report(sink, "session")] == [
        ("s2", 1, "0.01", 0),
        ("s1", 3, "0.0036", 1),
        (None, 1, "0.0014", 0),
    ]
    assert [(r["provider"], r["model"], r["events"], r["input_tokens"], r["cost_usd"], r["unpriced_events"]) for r in report(sink, "model")] == [
        ("openai", "gpt-4o", 4, 3500, "0.015", 0),
        ("openai", "no-such-model", 1, 10, "0", 1),
    ]
    assert [(r["window_start"], r["events"]) for r in report(sink, every=WINDOW)] == [
        ("2026-11-22T12:00:00Z", 4), ("2026-11-22T12:01:00Z", 1),
    ]


def test_tool_report_counts_calls_errors_and_durations(sink):
    write(sink, [
        event(at=W, input_tokens=1, output_tokens=1, tool_calls=[
            {"name": "search", "duration_ms": 10.0}, {"name": "search", "duration_ms": 30.0, "error": "timeout"},
        ]),
        event(at=W2, input_tokens=1, output_tokens=1, tool_calls=[{"name": "search", "duration_ms": 20.0}, {"name": "fetch"}]),
    ])

    assert report(sink, "tool") == [
        {"project_id": PROJECT, "tool_name": "search", "calls": 3, "errors": 1, "avg_duration_ms": 20.0, "p95_duration_ms": 30.0},
        {"project_id": PROJECT, "tool_name": "fetch", "calls": 1, "errors": 0, "avg_duration_ms": None, "p95_duration_ms": None},
    ]
    assert [(r["window_start"], r["tool_name"], r["calls"]) for r in report(sink, "tool", every=WINDOW)] == [
        ("2026-11-22T12:00:00Z", "search", 2), ("2026-11-22T12:01:00Z", "fetch", 1), ("2026-11-22T12:01:00Z", "search", 1),
    ]


def test_report_filters_run_in_the_engine(sink):
    odd = "o'brien\\x"
    write(sink, [
        event(at=W + timedelta(seconds=30), input_tokens=1000, output_tokens=0, project=odd),  # 0.0025
        event(at=W2 + timedelta(seconds=30), input_tokens=0, output_tokens=1000, project=odd),  # 0.01
        event(at=W + timedelta(seconds=30), input_tokens=400, output_tokens=0),  # 0.001
    ])

    assert report(sink, project=odd) == [project_record(2, 1000, 1000, "0.0125", project=odd)]
    assert report(sink, project=odd, since=W2) == [project_record(1, 0, 1000, "0.01", project=odd)]
    assert report(sink, until=W2) == [
        project_record(1, 1000, 0, "0.0025", project=odd),
        project_record(1, 400, 0, "0.001"),
    ]
    # Times are widened to whole windows: 12:01:31 selects the 12:01 window.
    assert report(sink, since=W2 + timedelta(seconds=31)) == [project_record(1, 0, 1000, "0.01", project=odd)]
    assert report(sink, since=W2 + timedelta(seconds=WINDOW)) == []
    assert windows(sink, odd)[key("project", W2)] == totals(1, 0, 1000, "0.01")


def test_event_time_with_an_offset_is_stored_as_its_instant(sink):
    # 13:00:30.5+01:00 is 12:00:30.5 UTC = 1_795_348_830.5 s after the epoch.
    e = event(at=datetime(2026, 11, 22, 13, 0, 30, 500_000, tzinfo=timezone(timedelta(hours=1))), input_tokens=1000, output_tokens=0)

    write(sink, [e])

    assert sink.query_rows(
        "SELECT toUnixTimestamp64Micro(timestamp), toUnixTimestamp(window_start) FROM usage.usage_events FINAL"
    ) == [(1_795_348_830_500_000, 1_795_348_800)]
    assert report(sink, since=W, until=W2) == [project_record(1, 1000, 0, "0.0025")]
    assert report(sink, since=W2) == []


# --- money -------------------------------------------------------------------------------------


def test_sub_micro_dollar_costs_sum_exactly(sink):
    # One gpt-5-nano input token costs 0.05 / 1,000,000 = 0.00000005 dollars.
    per_event = Decimal("0.00000005")
    sample = event(at=W, input_tokens=1, output_tokens=0, model="gpt-5-nano")
    assert price_event(sample).cost_usd == per_event
    assert sum([float(per_event)] * 10_000) != 0.0005  # floats would not get this right

    for window in range(10):  # 10 chunks of one 1,000-event message, one window each
        start = W + timedelta(seconds=WINDOW * window)
        batch = [
            event(at=start + timedelta(milliseconds=i), input_tokens=1, output_tokens=0, model="gpt-5-nano", session=None)
            for i in range(1_000)
        ]
        process(sink, [(json.dumps([e.wire_dict() for e in batch]).encode(), MessageOrigin(TOPIC, 0, next(_offsets), PROJECT.encode()))])

    (total,) = report(sink)
    assert total["events"] == 10_000
    assert total["cost_usd"] == "0.0005"  # 10,000 * 0.00000005
    assert Decimal(total["cost_usd"]) == per_event * 10_000
    per_window = [v[6] for k, v in windows(sink).items() if k[0] == "project"]
    assert per_window == [Decimal("0.00005")] * 10  # 1,000 * 0.00000005
    assert sink.query_rows("SELECT sum(cost_usd) FROM usage.usage_window_cells FINAL WHERE grouping = 'project' AND level = 60") == [
        (Decimal("0.0005"),)
    ]


@pytest.mark.parametrize("amount", ["0.0123", "0.000000000000000001", "999999999999999.999999999999999999"])
def test_provider_cost_is_stored_exactly(sink, amount):
    e = event(at=W, input_tokens=1, output_tokens=0, provider_cost=amount)

    write(sink, [e])

    (stored,) = sink.query_rows(f"SELECT provider_cost_usd FROM usage.usage_events FINAL WHERE event_id = {quote_string(e.event_id)}")
    assert stored == (Decimal(amount),)


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "attempts"),
    [("fail_inserts=3", 4), ("fail_after_insert=2", 3)],
    ids=["insert-fails", "acknowledgement-lost"],
)
def test_failed_writes_end_with_exact_totals(open_sink, plan, attempts):
    open_sink("ch").close()  # an existing store, reopened for the drill
    # A fresh plan per test: a plan counts its faults down as they happen.
    sink = open_sink("ch", fault_plan=parse_fault_plan(plan))

    outcome = process(sink, messages_of(data_set(), bad=1))

    assert outcome.attempts == attempts
    assert sink.stats.write_failures == attempts - 1
    assert process(sink, []).attempts == 1  # the plan is used up
    assert report(sink) == [project_record(5, 3510, 655, "0.015", cache_read=200, reasoning=100, unpriced=1)]
    assert windows(sink) == EXPECTED_WINDOWS
    assert sink.query_rows("SELECT count() FROM usage.usage_events FINAL") == [(5,)]
    assert sink.query_rows("SELECT count() FROM usage.usage_rejections FINAL") == [(1,)]


def test_fault_plan_on_a_fresh_store_hits_the_writes_not_the_migration(open_sink):
    sink = open_sink("fresh", fault_plan=FaultPlan(fail_inserts=3))

    assert sorted(sink.query_rows("SELECT version FROM usage.schema_migrations FINAL")) == [(1,), (2,), (3,), (4,)]
    assert write(sink, data_set()).attempts == 4
    assert report(sink) == [project_record(5, 3510, 655, "0.015", cache_read=200, reasoning=100, unpriced=1)]
    assert windows(sink) == EXPECTED_WINDOWS


@pytest.mark.parametrize(
    "overrides",
    [{"provider_cost": "1E+25"}, {"usage": {"input_tokens": 2**64, "output_tokens": 0, "cache_read_tokens": 0}}],
    ids=["provider-cost-1e25", "input-tokens-2**64"],
)
def test_every_event_decode_accepts_can_be_written(sink, overrides):
    wire = make_event_dict(timestamp=W, project_id=PROJECT, **overrides)

    outcome = process(sink, [(json.dumps(wire).encode(), MessageOrigin(TOPIC, 0, 1, PROJECT.encode()))])

    # Either written at the first attempt, or refused by decode: never a chunk ClickHouse refuses.
    assert outcome.attempts == 1
    assert not [l for l in outcome.dead_letters if json.loads(l[1])["reason"] == "sink_rejected"]


def test_provider_cost_below_the_column_scale_is_refused_not_truncated():
    # Decimal(38, 18) would store 1E-20 as 0: the schema refuses what it cannot keep exactly.
    with pytest.raises(ValidationError, match="more than 18 decimal places"):
        event(at=W, input_tokens=1, output_tokens=0, provider_cost="1E-20")


def test_database_name_that_needs_quoting(open_sink):
    sink = open_sink("ch", query="?database=usage-test")

    write(sink, [event(at=W, input_tokens=1000, output_tokens=0)])

    assert report(sink) == [project_record(1, 1000, 0, "0.0025")]


def test_large_look_ups_through_the_key_tables_find_what_the_statements_find(sink, monkeypatch):
    from stream_app.sink import clickhouse as module

    stored = data_set() + [event(at=W + timedelta(seconds=i % 50), input_tokens=i, output_tokens=1) for i in range(400)]
    write(sink, stored)  # its cells went through the key tables too, and add up (checked by windows())
    windows(sink)
    ids = {PROJECT: [e.event_id for e in stored] + [f"missing-{i}" for i in range(50)]}

    by_table = sink.lookup(ids)
    monkeypatch.setattr(module, "TABLE_LOOKUP_FROM", 10**9)
    by_statements = sink.lookup(ids)

    assert by_table == by_statements and len(by_table) == len(stored)


def test_large_cell_look_ups_through_the_key_tables_find_the_newest_stored_rows(sink, monkeypatch):
    from stream_app.core.window_cells import CellKey
    from stream_app.sink import clickhouse as module

    # Two chunks: the cells the second touches are written twice (two versions, until a merge).
    write(sink, [event(at=W + timedelta(seconds=i % 50), input_tokens=i, output_tokens=1, session=f"s{i}") for i in range(400)])
    write(sink, [event(at=W + timedelta(seconds=i % 50), input_tokens=i, output_tokens=2, session=f"s{i}") for i in range(200)])
    stored = [
        CellKey(*row[:7], row[7].replace(tzinfo=UTC), row[8], row[9])
        for row in sink.query_rows(f"SELECT DISTINCT {', '.join(CellKey._fields)} FROM usage.usage_window_cells")
    ]
    missing = [key._replace(session_id=f"missing-{i}") for i, key in enumerate(stored[:50])]
    keys = stored + missing
    assert len(keys) >= module.TABLE_LOOKUP_FROM

    by_table = sink._stored_cells(keys)
    monkeypatch.setattr(module, "TABLE_LOOKUP_FROM", 10**9)
    by_statements = sink._stored_cells(keys)

    assert by_table == by_statements and set(by_table) == set(stored)


def test_cells_rebuilt_from_events_in_sql_equal_the_cells_the_worker_folded(sink):
    # The one rule in two implementations: the worker's Python fold and the SQL rebuild
    # (upgrade, reprice, repairs) must give the same totals, cell by cell, at every level.
    from stream_app.sink.cell_rebuild import upgrade_to_window_cells
    from tests.factories import PROJECTS, varied_events

    events = varied_events(900, seed=91, now=W + timedelta(days=1), spread_seconds=2 * 86_400)
    for part in range(0, len(events), 150):  # several chunks, each its own messages
        write(sink, events[part : part + 150])
    folded = {p: {lv: _cells(sink, p, lv) for lv in (WINDOW, 3600, 86_400)} for p in PROJECTS}
    assert sum(v[0] for p in PROJECTS for k, v in folded[p][86_400].items() if k[0] == "project") == 900

    sink.client.command("TRUNCATE TABLE usage.usage_window_cells")
    upgrade_to_window_cells(sink.client, "usage", WINDOW)

    assert {p: {lv: _cells(sink, p, lv) for lv in (WINDOW, 3600, 86_400)} for p in PROJECTS} == folded
    # ...and the worker folds on from the rebuilt cells: a second chunk adds exactly its events.
    more = varied_events(90, seed=92, now=W + timedelta(days=1), spread_seconds=3600)
    write(sink, more)
    assert sum(r["events"] for r in report(sink)) == 990
    for p in PROJECTS:
        windows(sink, p)  # hour and day cells still the sums of their windows


@pytest.mark.parametrize("group_by", ["project", "agent", "session", "model", "tool"])
@pytest.mark.parametrize("every", [None, 60, 3600])
def test_the_json_clickhouse_writes_is_the_report_records(sink, group_by, every):
    # /report answers with ClickHouse's own JSON; it must be the very records `report` builds.
    from tests.factories import varied_events

    write(sink, varied_events(300, seed=5, now=W, spread_seconds=3 * 3600) + data_set())
    query = ReportQuery(group_by, every=every, since=W - timedelta(hours=2, minutes=7))

    records = sink.report(query)

    assert records and json.loads(sink.report_json(query)) == records
