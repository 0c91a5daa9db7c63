"""Tumbling windows by event time, aggregated per source message: pure math, no clocks, no I/O.

Every accepted event counts in one window per grouping: its project; its agent, its
session and its provider+model within the project. Each window key starts with the
project_id, the Kafka message key, so a window never spans two partitions.

The aggregator keeps one total per (window key, source message). That is what makes
the stored windows exact without a transaction: a Kafka message is immutable and is
read again whole after a crash or by a second worker racing on a rebalance, so its
contribution to a window is recomputed identically and *replaces* the stored one
(ReplacingMergeTree on the same key) instead of adding to it. A window's total is the
sum over its messages; a billing query reads those few rows, never the raw events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import NamedTuple

from schemas import UsageTrackingEvent

ZERO = Decimal(0)


class Grouping:
    PROJECT = "project"
    AGENT = "agent"
    SESSION = "session"
    MODEL = "model"
    ALL = (PROJECT, AGENT, SESSION, MODEL)


class Source(NamedTuple):
    """The Kafka message an event came in: its contribution's identity."""

    topic: str
    partition: int
    offset: int


class WindowKey(NamedTuple):
    """One window of one group: e.g. (agent, acme, planner, '', '', '', 12:01:00).

    Fields a grouping does not use are ''. A session window of an event without a
    session has session_id '' (the "no session" group), so every grouping sums to the
    project's total.
    """

    grouping: str
    project_id: str
    agent_name: str
    session_id: str
    provider: str
    model: str
    window_start: datetime


class Counted(NamedTuple):
    """What windows count of one event, from a validated event or a stored row alike."""

    project_id: str
    agent_name: str
    session_id: str
    provider: str
    model: str
    timestamp: datetime
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    failed: bool
    tools: tuple[tuple[str, str | None, float | None], ...]  # (name, error, duration_ms)

    @classmethod
    def of_event(cls, e: UsageTrackingEvent) -> Counted:
        u = e.usage
        return cls(
            e.project_id, e.agent_name, e.session_id or "", e.provider, e.model, e.timestamp,
            u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens,
            e.error is not None, tuple((t.name, t.error, t.duration_ms) for t in e.tool_calls),
        )

    @classmethod
    def of_stored(cls, v: dict) -> Counted:
        """From a `usage_events` row by column name (`tool_calls` is its stored JSON)."""
        tools = tuple((t["name"], t.get("error"), t.get("duration_ms")) for t in json.loads(v["tool_calls"] or "[]"))
        moment = v["timestamp"]  # ClickHouse hands UTC columns back naive
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
        return cls(
            v["project_id"], v["agent_name"], v["session_id"], v["provider"], v["model"], moment,
            int(v["input_tokens"]), int(v["output_tokens"]), int(v["cache_read_tokens"]),
            int(v["cache_write_tokens"]), int(v["reasoning_tokens"]), v["error"] is not None, tools,
        )


class ToolKey(NamedTuple):
    """One tool's window within an agent of a project."""

    project_id: str
    agent_name: str
    tool_name: str
    window_start: datetime


@dataclass(slots=True)
class WindowTotals:
    """What a set of events adds up to in one window."""

    events: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = ZERO
    unpriced_events: int = 0
    failed_events: int = 0
    tool_calls: int = 0

    def add(self, c: Counted, cost: Decimal, priced: bool) -> None:
        self.events += 1
        self.input_tokens += c.input_tokens
        self.output_tokens += c.output_tokens
        self.cache_read_tokens += c.cache_read_tokens
        self.cache_write_tokens += c.cache_write_tokens
        self.reasoning_tokens += c.reasoning_tokens
        self.cost_usd += cost
        self.unpriced_events += not priced
        self.failed_events += c.failed
        self.tool_calls += len(c.tools)

    def merge(self, other: WindowTotals) -> None:
        for name in WINDOW_TOTAL_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def values(self) -> tuple:
        return tuple(getattr(self, name) for name in WINDOW_TOTAL_FIELDS)


WINDOW_TOTAL_FIELDS: tuple[str, ...] = tuple(WindowTotals.__dataclass_fields__)


@dataclass(slots=True)
class ToolTotals:
    """Calls of one tool in one window; durations kept whole so percentiles stay exact."""

    calls: int = 0
    errors: int = 0
    durations_ms: list[float] = field(default_factory=list)

    def add(self, error: str | None, duration_ms: float | None) -> None:
        self.calls += 1
        self.errors += error is not None
        if duration_ms is not None:
            self.durations_ms.append(float(duration_ms))


def window_start(timestamp: datetime, window_seconds: int) -> datetime:
    """The start of the tumbling window holding `timestamp` (UTC, aligned to the epoch)."""
    epoch = int(timestamp.timestamp() // 1)
    # Floor division keeps pre-epoch and sub-second times in the right window.
    start = epoch - (epoch % window_seconds)
    return datetime.fromtimestamp(start, tz=timezone.utc)


def window_keys(c: Counted, start: datetime) -> tuple[WindowKey, ...]:
    """The four windows an event counts in, all starting at `start`."""
    p = c.project_id
    return (
        WindowKey(Grouping.PROJECT, p, "", "", "", "", start),
        WindowKey(Grouping.AGENT, p, c.agent_name, "", "", "", start),
        WindowKey(Grouping.SESSION, p, "", c.session_id, "", "", start),
        WindowKey(Grouping.MODEL, p, "", "", c.provider, c.model, start),
    )


class _MessageWindow:
    """The values of one message's events in one window of one project, gathered per group."""

    __slots__ = ("everything", "agents", "sessions", "models")

    def __init__(self) -> None:
        self.everything: list[tuple] = []
        self.agents: dict[str, list[tuple]] = {}
        self.sessions: dict[str, list[tuple]] = {}
        self.models: dict[tuple[str, str], list[tuple]] = {}


def column_sums(rows: list[tuple]) -> list:
    """Each column of `rows` summed, in row order (in C: one `sum` per column)."""
    return list(rows[0]) if len(rows) == 1 else list(map(sum, zip(*rows)))


class WindowAggregator:
    """Sums accepted events into (window key, source message) totals and tool totals.

    `add` each accepted event once with its stored cost; `window_cells` and `tool_cells`
    then hold what the sink writes. Memory is bounded by the chunk, not by how many
    sessions or agents exist overall. On the hot path an event's values are only
    gathered, per (project, window, message) and then per agent, session and model; each
    group's columns are summed once, when the cells are read (consecutive events of one
    message share their group, and a start is computed once per distinct second).
    """

    def __init__(self, window_seconds: int) -> None:
        if window_seconds < 1:
            raise ValueError("window_seconds must be at least 1")
        self.window_seconds = window_seconds
        # (project, start, source) -> the values of its events, per group
        self._groups: dict[tuple, _MessageWindow] = {}
        self._last: tuple = (None, None, None, None)  # (project, start, source, group) of the event before
        # (project, agent, tool, start, source) -> [calls, errors, durations]
        self._tool_cells: dict[tuple, list] = {}
        self._starts: dict[int, datetime] = {}

    def add(self, c: Counted, cost: Decimal, priced: bool, source: Source) -> datetime:
        """Count one accepted event; returns its window start."""
        return self._add(
            c.project_id, c.agent_name, c.session_id, c.provider, c.model, c.timestamp,
            (1, c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens, c.reasoning_tokens,
             cost, 0 if priced else 1, 1 if c.failed else 0, len(c.tools)),
            c.tools, source,
        )

    def add_event(self, e: object, cost: Decimal, priced: bool, source: Source) -> datetime:
        """`add` for an event object (`BillableEvent` or the pydantic model), without a `Counted`."""
        u = e.usage  # type: ignore[attr-defined]
        tools = e.tool_calls  # type: ignore[attr-defined]
        return self._add(
            e.project_id, e.agent_name, e.session_id or "", e.provider, e.model, e.timestamp,  # type: ignore[attr-defined]
            (1, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens,
             cost, 0 if priced else 1, 0 if e.error is None else 1, len(tools)),  # type: ignore[attr-defined]
            [(t.name, t.error, t.duration_ms) for t in tools] if tools else (), source,
        )

    def _add(self, project, agent, session, provider, model, timestamp, values, tools, source) -> datetime:
        second = int(timestamp.timestamp() // 1)
        start = self._starts.get(second)
        if start is None:
            start = self._starts[second] = window_start(timestamp, self.window_seconds)
        last_project, last_start, last_source, group = self._last
        if source is not last_source or start is not last_start or project != last_project:
            group = self._groups.get((project, start, source))
            if group is None:
                group = self._groups[(project, start, source)] = _MessageWindow()
            self._last = (project, start, source, group)
        group.everything.append(values)
        gathered = group.agents.get(agent)
        if gathered is None:
            group.agents[agent] = [values]
        else:
            gathered.append(values)
        gathered = group.sessions.get(session)
        if gathered is None:
            group.sessions[session] = [values]
        else:
            gathered.append(values)
        gathered = group.models.get((provider, model))
        if gathered is None:
            group.models[(provider, model)] = [values]
        else:
            gathered.append(values)
        for name, error, duration_ms in tools:
            tool_key = (project, agent, name, start, source)
            tool = self._tool_cells.get(tool_key)
            if tool is None:
                tool = self._tool_cells[tool_key] = [0, 0, []]
            tool[0] += 1
            tool[1] += error is not None
            if duration_ms is not None:
                tool[2].append(float(duration_ms))
        return start

    def window_cells(self) -> Iterable[tuple[tuple, list]]:
        """((grouping, project, agent, session, provider, model, start, source), totals) pairs."""
        for (project, start, source), group in self._groups.items():
            yield (Grouping.PROJECT, project, "", "", "", "", start, source), column_sums(group.everything)
            for agent, rows in group.agents.items():
                yield (Grouping.AGENT, project, agent, "", "", "", start, source), column_sums(rows)
            for session, rows in group.sessions.items():
                yield (Grouping.SESSION, project, "", session, "", "", start, source), column_sums(rows)
            for (provider, model), rows in group.models.items():
                yield (Grouping.MODEL, project, "", "", provider, model, start, source), column_sums(rows)

    def tool_cells(self) -> Iterable[tuple[tuple, list]]:
        """((project, agent, tool, start, source), [calls, errors, durations]) pairs."""
        return self._tool_cells.items()

    @property
    def windows(self) -> dict[tuple[WindowKey, Source], WindowTotals]:
        """The totals by (window key, source message)."""
        return {(WindowKey(*k[:7]), k[7]): WindowTotals(*v) for k, v in self.window_cells()}

    @property
    def tools(self) -> dict[tuple[ToolKey, Source], ToolTotals]:
        return {(ToolKey(*k[:4]), k[4]): ToolTotals(v[0], v[1], list(v[2])) for k, v in self._tool_cells.items()}

    def totals_by_window(self) -> dict[WindowKey, WindowTotals]:
        """Each window's total over all its sources (what a billing query returns)."""
        return sum_by_window(self.windows.items())


def sum_by_window(items: Iterable[tuple[tuple[WindowKey, Source], WindowTotals]]) -> dict[WindowKey, WindowTotals]:
    """Per-source totals folded into one total per window key."""
    out: dict[WindowKey, WindowTotals] = {}
    for (key, _source), totals in items:
        target = out.get(key)
        if target is None:
            target = out[key] = WindowTotals()
        target.merge(totals)
    return out


def bucket_start(moment: datetime, bucket_seconds: int) -> datetime:
    """The `report --every` bucket holding `moment`: a whole multiple of windows, UTC-aligned."""
    return window_start(moment, bucket_seconds)
