"""Which copy is billed, and exact windows through re-sends, replays and crashes (pure core).

The property test runs the worker's own decision and row-building code over generated
logs (new events, identical re-sends, changed re-sends, late events) against an
in-memory store with the tables' replace-by-key semantics, crashing between writes and
re-reading from the last commit with other chunk boundaries. Every window must equal a
brute-force sum over the first copy of each (project_id, event_id).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core.counting import (
    CONTENT_FIELDS,
    Copy,
    StoredCopy,
    chunk_keys,
    conflict_detail,
    content_of,
    copies_of,
    decide,
    differing_fields,
    fingerprint,
)
from stream_app.core.decode import DecodedEvent, MessageOrigin
from stream_app.core.pricing import PricedCost
from stream_app.core.rows import EVENT_COLUMNS, build_chunk_rows
from stream_app.core.window_cells import CellKey, StoredCell, cell_levels, cell_totals, fold
from stream_app.core.windows import WINDOW_TOTAL_FIELDS, Counted, Source, window_keys, window_start
from tests.factories import make_event

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def copy_of(event, offset: int, index: int | None = 0, partition: int = 0) -> Copy:
    item = DecodedEvent(event, MessageOrigin("t", partition, offset, event.project_id.encode()), index)
    return Copy(item, fingerprint(content_of(event)))


# --- content and fingerprints ---------------------------------------------------------


def test_fingerprint_ignores_key_order_whitespace_and_offset_spelling():
    a = make_event(event_id="e", timestamp=datetime(2026, 11, 22, 13, 0, tzinfo=UTC), provider_cost="1.50")
    b = a.model_copy(update={"timestamp": datetime.fromisoformat("2026-11-22T14:00:00+01:00")})
    c = a.model_copy(update={"provider_cost": Decimal("1.5")})

    assert fingerprint(content_of(a)) == fingerprint(content_of(b)) == fingerprint(content_of(c))


def test_differing_fields_names_each_changed_field():
    a = make_event(event_id="e", session_id="s1")
    b = a.model_copy(update={"session_id": "s2", "usage": a.usage.model_copy(update={"reasoning_tokens": 5})})

    assert differing_fields(content_of(a), content_of(b)) == ["session_id", "usage.reasoning_tokens"]
    assert len(CONTENT_FIELDS) == len(content_of(a))


def test_conflict_detail_says_what_differs_and_where_the_billed_copy_is():
    detail = conflict_detail(["timestamp", "agent_name"], (Source("llm.usage.events", 3, 1200), 7))

    assert detail == (
        "event_id already billed from llm.usage.events[3]@1200 #7; this copy differs in: timestamp, agent_name"
    )


# --- decide ------------------------------------------------------------------------------


def test_first_copy_in_the_chunk_is_billed_and_later_ones_sorted():
    e = make_event(event_id="e1")
    same = e.model_copy()
    changed = e.model_copy(update={"agent_name": "someone-else"})
    copies = copies_of([c.item for c in (copy_of(changed, 9), copy_of(same, 5), copy_of(e, 2))])

    decision = decide(copies, {})

    assert [c.source.offset for c in decision.accepted] == [2]
    assert [c.source.offset for c in decision.duplicates] == [5]
    assert [(c.copy.source.offset, c.billed.source.offset) for c in decision.conflicts] == [(9, 2)]


def test_a_stored_copy_is_the_billed_one():
    e = make_event(event_id="e1")
    stored = {(e.project_id, "e1"): StoredCopy(Source("t", 0, 1), 0, fingerprint(content_of(e)))}

    decision = decide([copy_of(e, 4)], stored)

    assert (decision.accepted, len(decision.duplicates)) == ([], 1)


def test_the_stored_message_read_again_is_billed_again_so_its_rows_are_rewritten():
    e = make_event(event_id="e1")
    stored = {(e.project_id, "e1"): StoredCopy(Source("t", 0, 4), 3, fingerprint(content_of(e)))}

    decision = decide([copy_of(e, 4, index=3)], stored)

    assert len(decision.accepted) == 1 and not decision.duplicates


def test_the_same_message_twice_in_one_chunk_counts_once():
    e = make_event(event_id="e1")

    decision = decide([copy_of(e, 4), copy_of(e, 4)], {})

    assert (len(decision.accepted), len(decision.duplicates)) == (1, 1)


def test_same_event_id_in_two_projects_is_two_events():
    a, b = make_event(event_id="x", project_id="p1"), make_event(event_id="x", project_id="p2")

    decision = decide(copies_of([copy_of(a, 1).item, copy_of(b, 2, partition=1).item]), {})

    assert len(decision.accepted) == 2
    assert chunk_keys(decision.accepted) == {"p1": ["x"], "p2": ["x"]}


# --- the whole write path against a replacing in-memory store ----------------------------

PRICE_PER_TOKEN = Decimal("0.000001")


def fixed_price(event) -> PricedCost:
    if event.model == "mystery":
        return PricedCost(Decimal(0), "unpriced", "test", "", "", "")
    return PricedCost(PRICE_PER_TOKEN * (event.usage.input_tokens + 3 * event.usage.output_tokens), "priced", "test", "x", event.model)


@dataclass
class ReplacingStore:
    """The tables' semantics: an event row replaces the stored row with the same key; a cell
    keeps every row written, and the highest version wins (ReplacingMergeTree before a merge)."""

    events: dict = field(default_factory=dict)
    cells: dict = field(default_factory=lambda: defaultdict(list))

    def lookup(self, copies: list[Copy]) -> dict:
        found = {}
        for c in copies:
            row = self.events.get(c.key)
            if row is not None:
                found[c.key] = StoredCopy(Source(row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]), row["batch_index"], row["fingerprint"])
        return found

    def stored_cells(self, keys) -> dict:
        out = {}
        n = len(CellKey._fields)
        for key in keys:
            if self.cells.get(key):
                row = max(self.cells[key], key=lambda r: r[-1])
                out[key] = StoredCell(row[n], row[n + 1], tuple(row[n + 2 : -1]))
        return out

    def write(self, rows, crash_after: int | None, cells_written: int = 0) -> bool:
        """Events, then cells (the sink's order); False if it 'crashed' on the way.

        crash_after: 0 = before anything, 1 = after the events, 2 = after `cells_written`
        of the cell rows (an insert split by month partitions can land in part).
        """
        if crash_after == 0:
            return False
        for row in rows.event_rows:
            record = dict(zip(EVENT_COLUMNS, row, strict=True))
            self.events[(record["project_id"], record["event_id"])] = record
        if crash_after == 1:
            return False
        folded = fold(rows.window_parts, self.stored_cells(list(rows.window_parts)))
        if crash_after == 2:
            folded = folded[:cells_written]
        for row in folded:
            self.cells[CellKey(*row[: len(CellKey._fields)])].append(row)
        return crash_after is None

    def totals(self) -> dict:
        """Per (level, window key): the sum over partitions of each cell's winning row."""
        out: dict = defaultdict(lambda: dict.fromkeys(WINDOW_TOTAL_FIELDS, 0))
        for key, totals in cell_totals(row for rows in self.cells.values() for row in rows).items():
            window = (key.level, *key[1:8])
            for name, value in zip(WINDOW_TOTAL_FIELDS, totals, strict=True):
                out[window][name] += value
        return {k: v for k, v in out.items() if v["events"]}


def expected_totals(log: list[tuple[Source, int, object]], window_seconds: int) -> dict:
    """Brute force: the first copy of each key in log order, summed per window."""
    billed = {}
    for _source, _index, event in log:
        billed.setdefault((event.project_id, event.event_id), event)
    out: dict = defaultdict(lambda: dict.fromkeys(WINDOW_TOTAL_FIELDS, 0))
    for event in billed.values():
        priced = fixed_price(event)
        for level in cell_levels(window_seconds):
            start = window_start(event.timestamp, level)
            for key in window_keys(Counted.of_event(event), start):
                add_event(out[(level, *key)], event, priced)
    return dict(out)


def add_event(t: dict, event, priced: PricedCost) -> None:
    t["events"] += 1
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        t[name] += getattr(event.usage, name)
    t["cost_usd"] += priced.cost_usd
    t["unpriced_events"] += priced.status != "priced"
    t["failed_events"] += event.error is not None
    t["tool_calls"] += len(event.tool_calls)


def expected_conflicts(log) -> int:
    billed, conflicts = {}, 0
    for _source, _index, event in log:
        key = (event.project_id, event.event_id)
        if key in billed and content_of(billed[key]) != content_of(event):
            conflicts += 1
        billed.setdefault(key, event)
    return conflicts


EVENT_IDS = [f"e{i}" for i in range(6)]


@st.composite
def usage_logs(draw):
    """Messages per project (= partition), with re-sends identical or changed, late events too."""
    pool: dict = {}
    messages = []
    offsets = defaultdict(int)
    for _ in range(draw(st.integers(1, 12))):
        project = draw(st.sampled_from(["p1", "p2"]))
        events = []
        for _ in range(draw(st.integers(1, 4))):
            event_id = draw(st.sampled_from(EVENT_IDS))
            previous = pool.get((project, event_id))
            kind = draw(st.sampled_from(["new", "same", "changed"])) if previous else "new"
            if kind == "same":
                event = previous
            else:
                event = make_event(
                    event_id=event_id,
                    project_id=project,
                    agent_name=draw(st.sampled_from(["a", "b"])),
                    session_id=draw(st.sampled_from(["s1", "s2", None])),
                    model=draw(st.sampled_from(["gpt-4o", "mystery"])),
                    timestamp=T0 - timedelta(minutes=draw(st.integers(0, 3 * 24 * 60))),
                    usage={"input_tokens": draw(st.integers(0, 50)), "output_tokens": draw(st.integers(0, 50)), "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0},
                    error=draw(st.sampled_from([None, "boom"])),
                    tool_calls=[{"name": "t", "duration_ms": 1.0, "error": None}] * draw(st.integers(0, 2)),
                )
                pool.setdefault((project, event_id), event)
            events.append(event)
        partition = 0 if project == "p1" else 1
        messages.append((Source("t", partition, offsets[partition]), events))
        offsets[partition] += 1
    return messages


def process(store: ReplacingStore, chunk, crash_after=None, cells_written=0):
    """One attempt at a chunk through the pure core and the store; returns (written, conflicts)."""
    decoded = [
        DecodedEvent(event, MessageOrigin(src.topic, src.partition, src.offset, None), index)
        for src, events in chunk
        for index, event in enumerate(events)
    ]
    copies = copies_of(decoded)
    decision = decide(copies, store.lookup(copies))
    rows = build_chunk_rows(decision.accepted, [], price=fixed_price, window_seconds=60, ingested_at=T0)
    return store.write(rows, crash_after, cells_written), len(decision.conflicts)


@settings(max_examples=200, deadline=None)
@given(messages=usage_logs(), data=st.data())
def test_windows_equal_brute_force_through_resends_replays_and_crashes(messages, data):
    store = ReplacingStore()
    committed = 0
    dead_lettered = 0
    while committed < len(messages):
        size = data.draw(st.integers(1, 4), label="chunk size")
        chunk = messages[committed : committed + size]
        crash_after = data.draw(st.sampled_from([None, None, 0, 1, 2]), label="crash after write")
        written, conflicts = process(store, chunk, crash_after, data.draw(st.integers(0, 30), label="cells landed"))
        if written:
            committed += len(chunk)  # the offsets are committed only after every write
            dead_lettered += conflicts
        # else: a crash before the commit: the same messages come again, maybe chunked otherwise
        if committed and data.draw(st.booleans(), label="a stale worker replays"):
            # A worker that lost the partition on a rebalance writes an old chunk late.
            start = data.draw(st.integers(0, committed - 1), label="stale chunk start")
            process(store, messages[start : start + data.draw(st.integers(1, 4), label="stale chunk size")])

    log = [(src, i, e) for src, events in messages for i, e in enumerate(events)]
    assert store.totals() == expected_totals(log, 60)
    assert len(store.events) == len({(e.project_id, e.event_id) for _s, _i, e in log})
    assert dead_lettered == expected_conflicts(log)
