"""`build_chunk_rows`: one chunk of decoded events and rejections into table rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from stream_app.core.billable import as_billable
from stream_app.core.counting import copies_of, decide
from stream_app.core.decode import DecodedEvent, MessageOrigin, Rejection
from stream_app.core.pricing import PricedCost
from stream_app.core.rows import (
    EVENT_COLUMNS,
    REJECTION_COLUMNS,
    TOMBSTONE_VERSION,
    TOOL_COLUMNS,
    build_chunk_rows,
    tombstone_rows,
    event_row,
    rejection_row,
)
from stream_app.core.windows import WINDOW_TOTAL_FIELDS
from tests.factories import make_event

TOPIC = "llm.usage.events"
INGESTED = datetime(2026, 11, 22, 12, 30, 0, 123_456, tzinfo=UTC)
T0 = datetime(2026, 11, 22, 12, 0, 10, tzinfo=UTC)


def origin(offset: int, partition: int = 2) -> MessageOrigin:
    return MessageOrigin(TOPIC, partition, offset, b"proj-acme")


def decoded(event, offset: int, index: int | None = None) -> DecodedEvent:
    return DecodedEvent(event, origin(offset), index)


def fixed_price(event) -> PricedCost:
    """A stand-in catalog: $0.001 per input token, unknown for model 'mystery'."""
    if event.model == "mystery":
        return PricedCost(Decimal(0), "unpriced", "test-catalog", "", "", "no price for mystery")
    return PricedCost(Decimal("0.001") * event.usage.input_tokens, "priced", "test-catalog", "openai", event.model)


def build(items, rejections=(), window_seconds=60):
    """The worker's path for a chunk nothing of which is stored yet."""
    decision = decide(copies_of(items), {})
    rows = build_chunk_rows(decision.accepted, list(rejections), price=fixed_price, window_seconds=window_seconds, ingested_at=INGESTED)
    return Built(rows, len(decision.duplicates), len(decision.conflicts))


class Built:
    """A chunk's rows with what the counting decision dropped."""

    def __init__(self, rows, duplicates: int, conflicts: int) -> None:
        self.rows, self.duplicates, self.conflicts = rows, duplicates, conflicts

    def __getattr__(self, name):
        return getattr(self.rows, name)


def as_record(row: tuple) -> dict:
    assert len(row) == len(EVENT_COLUMNS)
    return dict(zip(EVENT_COLUMNS, row, strict=True))


def test_event_row_has_one_value_per_column():
    rows = build([decoded(make_event(timestamp=T0), 1)])

    (row,) = rows.event_rows
    assert len(row) == len(EVENT_COLUMNS) == 38


def test_event_row_values():
    event = make_event(
        event_id="evt-1",
        project_id="proj-acme",
        timestamp=datetime(2026, 11, 22, 12, 0, 59, 999_000, tzinfo=UTC),
        source="support-api",
        agent_name="triage-agent",
        session_id="sess-1",
        handoff_chain=["router", "triage-agent"],
        operation="classify",
        method="stream",
        provider="openai",
        model="gpt-4o",
        usage={"input_tokens": 50, "output_tokens": 20, "cache_read_tokens": 10, "cache_write_tokens": 5, "reasoning_tokens": 7},
        tool_calls=[{"name": "search", "duration_ms": 4.5}, {"name": "fetch", "error": "timeout"}],
        finish_reason="stop",
        duration_ms=812.5,
        error=None,
        provider_cost="0.0123",
        provider_metadata={"z": 1, "a": "ü"},
        context={"region": "eu"},
    )

    record = as_record(build([decoded(event, 77)]).event_rows[0])

    assert record == {
        "event_id": "evt-1",
        "project_id": "proj-acme",
        "timestamp": datetime(2026, 11, 22, 12, 0, 59, 999_000, tzinfo=UTC),
        "window_start": datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        "source": "support-api",
        "agent_name": "triage-agent",
        "session_id": "sess-1",
        "handoff_chain": ["router", "triage-agent"],
        "operation": "classify",
        "method": "stream",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 50,
        "output_tokens": 20,
        "cache_read_tokens": 10,
        "cache_write_tokens": 5,
        "reasoning_tokens": 7,
        "tool_call_count": 2,
        "tool_calls": '[{"duration_ms":4.5,"error":null,"name":"search"},{"duration_ms":null,"error":"timeout","name":"fetch"}]',
        "finish_reason": "stop",
        "duration_ms": 812.5,
        "error": None,
        "cost_usd": Decimal("0.050"),
        "price_status": "priced",
        "price_source": "test-catalog",
        "catalog_provider": "openai",
        "catalog_model": "gpt-4o",
        "price_detail": "",
        "provider_cost_usd": Decimal("0.0123"),
        "provider_metadata": '{"a":"ü","z":1}',
        "context": '{"region":"eu"}',
        "kafka_topic": TOPIC,
        "kafka_partition": 2,
        "kafka_offset": 77,
        "batch_index": -1,
        "fingerprint": as_billable(event).fingerprint,
        "price_generation": 0,
        "ingested_at": INGESTED,
    }


def test_absent_optional_strings_become_empty_and_nullable_ones_stay_null():
    event = make_event(
        timestamp=T0, session_id=None, operation=None, finish_reason=None, duration_ms=None, error=None,
        provider_cost=None, handoff_chain=[], tool_calls=[], provider_metadata={}, context={},
    )

    record = as_record(build([decoded(event, 1)]).event_rows[0])

    assert (record["session_id"], record["operation"], record["finish_reason"]) == ("", "", "")
    assert (record["duration_ms"], record["error"], record["provider_cost_usd"]) == (None, None, None)
    assert (record["handoff_chain"], record["tool_calls"], record["tool_call_count"]) == ([], "[]", 0)
    assert (record["provider_metadata"], record["context"]) == ("{}", "{}")


def test_failed_call_keeps_its_error_text():
    record = as_record(build([decoded(make_event(timestamp=T0, error="rate limited"), 1)]).event_rows[0])

    assert record["error"] == "rate limited"


def test_the_first_copy_in_a_chunk_is_billed_and_a_changed_later_copy_is_not():
    first = make_event(event_id="dup", timestamp=T0, usage={"input_tokens": 100, "output_tokens": 1, "cache_read_tokens": 0})
    other = make_event(event_id="other", timestamp=T0)
    again = make_event(event_id="dup", timestamp=T0, usage={"input_tokens": 300, "output_tokens": 1, "cache_read_tokens": 0})

    rows = build([decoded(first, 10), decoded(other, 11), decoded(again, 12)])

    assert (rows.events, rows.duplicates, rows.conflicts) == (2, 0, 1)
    records = {r["event_id"]: r for r in map(as_record, rows.event_rows)}
    assert set(records) == {"dup", "other"}
    assert records["dup"]["input_tokens"] == 100
    assert records["dup"]["kafka_offset"] == 10
    assert records["dup"]["cost_usd"] == Decimal("0.100")


def test_three_identical_copies_count_two_duplicates():
    event = make_event(event_id="dup", timestamp=T0)

    rows = build([decoded(event, 1), decoded(event, 2), decoded(event, 3)])

    assert (rows.events, rows.duplicates) == (1, 2)


def test_same_event_id_in_two_projects_is_two_events():
    # Tables are keyed by (project_id, event_id); so is the chunk's de-duplication.
    rows = build([
        decoded(make_event(event_id="e", project_id="proj-a", timestamp=T0), 1),
        decoded(make_event(event_id="e", project_id="proj-b", timestamp=T0), 2),
    ])

    assert (rows.events, rows.duplicates) == (2, 0)


def test_unpriced_events_are_counted_and_written():
    rows = build([
        decoded(make_event(model="mystery", timestamp=T0), 1),
        decoded(make_event(model="gpt-4o", timestamp=T0), 2),
        decoded(make_event(model="mystery", timestamp=T0), 3),
    ])

    assert rows.unpriced_events == 2
    assert rows.events == 3
    statuses = sorted(as_record(r)["price_status"] for r in rows.event_rows)
    assert statuses == ["priced", "unpriced", "unpriced"]


def test_a_duplicate_unpriced_event_is_counted_once():
    event = make_event(model="mystery", timestamp=T0)

    assert build([decoded(event, 1), decoded(event, 2)]).unpriced_events == 1


def test_window_contributions_per_cell_level_and_source_message():
    rows = build(
        [
            decoded(make_event(project_id="a", session_id="s", timestamp=datetime(2026, 11, 22, 12, 0, 1, tzinfo=UTC)), 1, 0),
            decoded(make_event(project_id="a", session_id="s", timestamp=datetime(2026, 11, 22, 12, 4, 59, tzinfo=UTC)), 1, 1),
            decoded(make_event(project_id="a", session_id="s", timestamp=datetime(2026, 11, 22, 12, 5, 0, tzinfo=UTC)), 2),
            decoded(make_event(project_id="b", session_id="s", timestamp=datetime(2026, 11, 22, 12, 3, 0, tzinfo=UTC)), 4),
        ],
        window_seconds=300,
    )

    def project_cells(level):
        return sorted(
            (k.project_id, k.window_start.hour * 60 + k.window_start.minute, [(o, t[0]) for o, t in parts])
            for k, parts in rows.window_parts.items() if k.grouping == "project" and k.level == level
        )

    # (project, minute of day, [(source offset, events)]): one contribution per message.
    assert project_cells(300) == [("a", 720, [(1, 2)]), ("a", 725, [(2, 1)]), ("b", 720, [(4, 1)])]
    assert project_cells(3600) == [("a", 720, [(1, 2), (2, 1)]), ("b", 720, [(4, 1)])]
    assert project_cells(86400) == [("a", 0, [(1, 2), (2, 1)]), ("b", 0, [(4, 1)])]
    assert {(k.grouping, k.level) for k in rows.window_parts} == {
        (g, lv) for g in ("project", "agent", "session", "model") for lv in (300, 3600, 86400)
    }
    cost_at = WINDOW_TOTAL_FIELDS.index("cost_usd")
    cost = sum(t[cost_at] for k, parts in rows.window_parts.items() if k.grouping == "model" and k.level == 300 for _o, t in parts)
    assert cost == sum(as_record(r)["cost_usd"] for r in rows.event_rows)
    assert rows.window_rows == []  # folded by the sink, once it has read the stored cells


def test_tombstone_rows_empty_every_tool_window_of_a_message():
    items = [decoded(make_event(timestamp=T0, tool_calls=[{"name": "x"}]), 9, 0)]
    built = build(items)
    copies = copies_of(items)
    rejection = Rejection("sink_rejected", "refused", origin(9), 0, b"{}")

    tomb = tombstone_rows(copies, [rejection], window_seconds=60, rejected_at=INGESTED)

    # Window cells are written after events, which were refused: nothing of them to undo.
    assert (tomb.window_parts, tomb.window_rows) == ({}, [])
    assert len(tomb.tool_rows) == len(built.tool_rows) == 1
    assert all(r[-1] == TOMBSTONE_VERSION and r[TOOL_COLUMNS.index("calls")] == 0 for r in tomb.tool_rows)
    assert (tomb.event_rows, tomb.rejections) == ([], [rejection])


def test_empty_chunk():
    rows = build([])

    assert (rows.events, rows.event_rows, rows.rejection_rows, rows.window_rows, rows.tool_rows) == (0, [], [], [], [])
    assert (rows.duplicates, rows.unpriced_events) == (0, 0)


def test_rejection_rows():
    whole = Rejection("invalid_json", "value is not JSON", origin(5), None, b"{oops")
    element = Rejection("invalid_event", "method: bad", origin(6), 3, b'{"event_id":"e-9"}', "e-9", "proj-acme")

    rows = build([], [whole, element])

    assert rows.rejection_rows == [
        (TOPIC, 2, 5, -1, "invalid_json", "value is not JSON", "", "", "{oops", INGESTED),
        (TOPIC, 2, 6, 3, "invalid_event", "method: bad", "e-9", "proj-acme", '{"event_id":"e-9"}', INGESTED),
    ]
    assert all(len(row) == len(REJECTION_COLUMNS) == 10 for row in rows.rejection_rows)
    assert rows.events == 0


def test_rejection_row_of_bytes_that_are_not_utf8():
    rejection = Rejection("invalid_utf8", "value is not UTF-8", origin(1), None, b'{"a":"\xff"}')

    row = dict(zip(REJECTION_COLUMNS, rejection_row(rejection, INGESTED), strict=True))

    assert row["raw"] == '{"a":"\ufffd"}'


def test_event_row_uses_the_given_window_start():
    event = make_event(timestamp=T0)
    priced = PricedCost(Decimal("1.5"), "priced", "s", "p", "m")
    start = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    copy = copies_of([DecodedEvent(event, origin(9), 4)])[0]

    record = as_record(event_row(copy, priced, start, INGESTED, 3))

    assert record["window_start"] is start
    assert (record["batch_index"], record["price_generation"]) == (4, 3)
    assert record["cost_usd"] == Decimal("1.5")
    assert json.loads(record["tool_calls"]) == [t.model_dump(mode="json") for t in event.tool_calls]
