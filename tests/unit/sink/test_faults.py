"""Fault injection: `USAGE_SINK_FAULT_PLAN` parsing and the failing client wrapper."""

from __future__ import annotations

import pytest

from stream_app.errors import ConfigurationError, PipelineError
from stream_app.sink import faults
from stream_app.sink.faults import FaultPlan, FaultyClient, InjectedFault, parse_fault_plan


@pytest.mark.parametrize(
    ("text", "plan"),
    [
        ("", FaultPlan()),
        ("  ", FaultPlan()),
        ("fail_inserts=3", FaultPlan(fail_inserts=3)),
        ("fail_after_insert=2", FaultPlan(fail_after_insert=2)),
        ("outage_seconds=1.5", FaultPlan(outage_seconds=1.5)),
        ("fail_inserts=3,fail_after_insert=2,outage_seconds=30", FaultPlan(3, 2, 30.0)),
        (" fail_inserts=1 , outage_seconds=2 ,", FaultPlan(fail_inserts=1, outage_seconds=2.0)),
        ("fail_inserts=1,fail_inserts=4", FaultPlan(fail_inserts=4)),
    ],
)
def test_parse_fault_plan(text, plan):
    assert parse_fault_plan(text) == plan


def test_empty_plan_is_inactive_and_any_fault_activates_it():
    assert not FaultPlan().active
    assert FaultPlan(fail_inserts=1).active
    assert FaultPlan(fail_after_insert=1).active
    assert FaultPlan(outage_seconds=0.5).active


@pytest.mark.parametrize(
    "text",
    ["fail_insert=3", "fail_inserts=three", "fail_inserts", "fail_inserts=", "outage_seconds=soon", "fail_inserts=1.5", "crash"],
)
def test_bad_fault_plan_names_the_setting_and_the_part(text):
    with pytest.raises(ConfigurationError) as caught:
        parse_fault_plan(f"fail_after_insert=1,{text}")

    message = str(caught.value)
    assert message.startswith("USAGE_SINK_FAULT_PLAN: ")
    assert repr(text) in message
    assert "fail_inserts=3" in message  # shows the syntax
    assert isinstance(caught.value, PipelineError)


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.closed = False

    def insert(self, *args, **kwargs):
        self.calls.append(("insert", args))
        return "inserted"

    def command(self, *args, **kwargs):
        self.calls.append(("command", args))
        return "commanded"

    def query(self, *args, **kwargs):
        self.calls.append(("query", args))
        return "queried"

    def raw_query(self, *args, **kwargs):
        self.calls.append(("raw_query", args))
        return b"[]"

    def close(self) -> None:
        self.closed = True


def test_fail_inserts_fails_before_writing_then_passes_through():
    inner = RecordingClient()
    client = FaultyClient(inner, FaultPlan(fail_inserts=2))

    for _ in range(2):
        with pytest.raises(InjectedFault, match="nothing written"):
            client.insert("t", [[1]])
    assert inner.calls == []

    assert client.insert("t", [[1]]) == "inserted"
    assert inner.calls == [("insert", ("t", [[1]]))]


def test_fail_after_insert_writes_then_fails():
    inner = RecordingClient()
    client = FaultyClient(inner, FaultPlan(fail_after_insert=1))

    with pytest.raises(InjectedFault, match="lost acknowledgement"):
        client.insert("t", [[1]])
    assert inner.calls == [("insert", ("t", [[1]]))]  # written although it "failed"

    assert client.insert("t", [[2]]) == "inserted"
    assert len(inner.calls) == 2


def test_fail_inserts_come_before_fail_after_insert():
    inner = RecordingClient()
    client = FaultyClient(inner, FaultPlan(fail_inserts=1, fail_after_insert=1))

    with pytest.raises(InjectedFault, match="nothing written"):
        client.insert("t", [])
    with pytest.raises(InjectedFault, match="lost acknowledgement"):
        client.insert("t", [])
    client.insert("t", [])

    assert [c[0] for c in inner.calls] == ["insert", "insert"]


def test_commands_and_queries_pass_through_without_an_outage():
    inner = RecordingClient()
    client = FaultyClient(inner, FaultPlan(fail_inserts=5))

    assert client.command("SELECT 1") == "commanded"
    assert client.query("SELECT 2") == "queried"
    assert client.raw_query("SELECT 3") == b"[]"  # /report's JSON
    client.insert("_keys_events_1_ab", [])  # a look-up's keys: never a fault
    client.close()

    assert inner.calls == [
        ("command", ("SELECT 1",)), ("query", ("SELECT 2",)), ("raw_query", ("SELECT 3",)), ("insert", ("_keys_events_1_ab", [])),
    ]
    assert inner.closed


def test_outage_starts_at_the_first_insert_and_ends_after_its_duration(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(faults.time, "monotonic", lambda: clock[0])
    inner = RecordingClient()
    client = FaultyClient(inner, FaultPlan(outage_seconds=30))

    assert client.query("before") == "queried"  # no outage until the first insert
    with pytest.raises(InjectedFault, match="outage"):
        client.insert("t", [])
    clock[0] = 1029.9
    for call in (lambda: client.insert("t", []), lambda: client.command("c"), lambda: client.query("q")):
        with pytest.raises(InjectedFault, match="outage"):
            call()
    clock[0] = 1030.0

    assert client.insert("t", []) == "inserted"
    assert client.command("c") == "commanded"
    assert [c[0] for c in inner.calls] == ["query", "insert", "command"]


@pytest.mark.parametrize("text", ["fail_inserts=-1", "fail_after_insert=-2", "outage_seconds=-5"])
def test_negative_fault_plan_values_are_refused(text):
    with pytest.raises(ConfigurationError, match="USAGE_SINK_FAULT_PLAN"):
        parse_fault_plan(text)


def test_crash_after_names_a_table_the_chunk_writes():
    assert parse_fault_plan("crash_after=usage_window_cells") == FaultPlan(crash_after="usage_window_cells")
    assert FaultPlan(crash_after="usage_events").active
    with pytest.raises(ConfigurationError, match="tables: usage_rejections, usage_tool_windows, usage_events, usage_window_cells"):
        parse_fault_plan("crash_after=usage_everything")


def test_arrow_inserts_fail_as_the_plan_says():
    inner = RecordingClient()
    inner.insert_arrow = lambda *args, **kwargs: inner.calls.append(("insert_arrow", args)) or "inserted"
    client = FaultyClient(inner, FaultPlan(fail_inserts=1, fail_after_insert=1))

    with pytest.raises(InjectedFault, match="nothing written"):
        client.insert_arrow("t", "table")
    assert inner.calls == []
    with pytest.raises(InjectedFault, match="lost acknowledgement"):
        client.insert_arrow("t", "table")
    assert inner.calls == [("insert_arrow", ("t", "table"))]
    assert client.insert_arrow("_keys_1", "keys") == "inserted"  # a look-up's keys pass through
