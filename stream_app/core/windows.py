"""Tumbling windows by event time: pure math, no clocks, no I/O.

Every event belongs to one window per grouping: its project, its agent within the
project, and (when it has one) its session within the project. Each window key starts
with the project_id, the Kafka message key, so a window never spans two partitions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from schemas import UsageTrackingEvent


class Grouping:
    PROJECT = "project"
    AGENT = "agent"
    SESSION = "session"
    ALL = (PROJECT, AGENT, SESSION)


@dataclass(frozen=True, slots=True, order=True)
class WindowKey:
    """One window of one group: e.g. (agent, acme, planner, '', 12:01:00)."""

    grouping: str
    project_id: str
    agent_name: str
    session_id: str
    window_start: datetime


def window_start(timestamp: datetime, window_seconds: int) -> datetime:
    """The start of the tumbling window holding `timestamp` (UTC, aligned to the epoch)."""
    epoch = int(timestamp.timestamp() // 1)
    # Floor division keeps pre-epoch and sub-second times in the right window.
    start = epoch - (epoch % window_seconds)
    return datetime.fromtimestamp(start, tz=timezone.utc)


def window_keys(event: UsageTrackingEvent, window_seconds: int) -> tuple[WindowKey, ...]:
    """The windows an event counts in: project, agent and, if it has one, session."""
    start = window_start(event.timestamp, window_seconds)
    keys = [
        WindowKey(Grouping.PROJECT, event.project_id, "", "", start),
        WindowKey(Grouping.AGENT, event.project_id, event.agent_name, "", start),
    ]
    if event.session_id:
        keys.append(WindowKey(Grouping.SESSION, event.project_id, "", event.session_id, start))
    return tuple(keys)


def touched_project_windows(
    events: Iterable[UsageTrackingEvent], window_seconds: int
) -> set[tuple[str, datetime]]:
    """The (project_id, window_start) pairs a set of events falls into."""
    return {(e.project_id, window_start(e.timestamp, window_seconds)) for e in events}
