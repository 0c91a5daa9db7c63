"""Replaying dead letters: which originals now pass, and what to publish for them.

Replay never bypasses the rules: each dead letter's original bytes, or each corrected line
of a file, goes through `decode_message` exactly as the worker would, and only what
decodes with no rejection at all is planned, byte for byte, under the key the worker
expects. Planning is pure; `usage-pipeline dlq replay` publishes the plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas import UsageTrackingEvent
from stream_app.core.dead_letter import DeadLetter, describe_source
from stream_app.core.decode import MessageOrigin, decode_message


@dataclass(frozen=True, slots=True)
class ReplayMessage:
    """Bytes that pass every rule now, and the key to publish them with."""

    key: bytes | None
    value: bytes
    events: tuple[UsageTrackingEvent, ...]
    origin: str  # where they came from, for the report: a dead letter's source or a file line


@dataclass(frozen=True, slots=True)
class ReplaySkip:
    """A dead letter or a line that still cannot be billed, and why."""

    origin: str
    reason: str
    detail: str


@dataclass(slots=True)
class ReplayPlan:
    """What a replay would publish, and what it leaves alone."""

    ready: list[ReplayMessage] = field(default_factory=list)
    skipped: list[ReplaySkip] = field(default_factory=list)
    repeats: int = 0  # dead letters of an input already planned (redelivery dead-letters twice)

    @property
    def events(self) -> int:
        return sum(len(message.events) for message in self.ready)


class ReplayPlanner:
    """Re-validates dead letters one at a time with the current rules (see `plan_replay`)."""

    def __init__(self, *, now: datetime, max_future_skew: timedelta, reason: str | None = None) -> None:
        self.now = now
        self.max_future_skew = max_future_skew
        self.reason = reason
        self.plan = ReplayPlan()
        self._planned: set[tuple[str, int, int, int | None]] = set()

    def add(self, letter: DeadLetter) -> ReplayMessage | ReplaySkip | None:
        """Plan one letter; None when it is not selected or its input was planned already."""
        if self.reason is not None and letter.reason != self.reason:
            return None
        if letter.source_position in self._planned:
            self.plan.repeats += 1
            return None
        self._planned.add(letter.source_position)
        where = describe_source(letter)
        if letter.raw_truncated:
            return self._skip(ReplaySkip(where, letter.reason, "the dead letter holds only a prefix of the message"))
        result = decode_message(letter.raw, letter.source, now=self.now, max_future_skew=self.max_future_skew)
        if result.rejections:
            first = result.rejections[0]
            return self._skip(ReplaySkip(where, first.reason, first.detail))
        events = tuple(decoded.event for decoded in result.events)
        message = ReplayMessage(_replay_key(letter.source.key, events), letter.raw, events, where)
        self.plan.ready.append(message)
        return message

    def _skip(self, skip: ReplaySkip) -> ReplaySkip:
        self.plan.skipped.append(skip)
        return skip


def plan_replay(
    letters: Iterable[DeadLetter],
    *,
    now: datetime,
    max_future_skew: timedelta,
    reason: str | None = None,
) -> ReplayPlan:
    """Re-validate each dead letter's original bytes with the current rules.

    A letter is ready when its bytes, under its original key, now decode with no
    rejection at all (e.g. a `future_timestamp` event whose time has come); it is then
    re-published byte for byte. Everything else is skipped with the reason it fails now.
    Each rejected input is planned once, however often it was dead-lettered.
    """
    planner = ReplayPlanner(now=now, max_future_skew=max_future_skew, reason=reason)
    for letter in letters:
        planner.add(letter)
    return planner.plan


def plan_file_replay(
    lines: Iterable[bytes], *, now: datetime, max_future_skew: timedelta, source_name: str = "file"
) -> ReplayPlan:
    """Validate corrected events, one JSON object per line, with the consumer's own rules.

    Blank lines are skipped and a UTF-8 byte order mark on the first line is ignored; a
    good line is published as it is, keyed by its project_id. A bad line is skipped with
    `line N` and the reason, exactly as the worker would have dead-lettered it.
    """
    plan = ReplayPlan()
    for number, line in enumerate(lines, start=1):
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        line = line.strip()
        if not line:
            continue
        where = f"line {number}"
        origin = MessageOrigin(source_name, 0, number, None)
        result = decode_message(line, origin, now=now, max_future_skew=max_future_skew)
        if result.rejections:
            first = result.rejections[0]
            plan.skipped.append(ReplaySkip(where, first.reason, first.detail))
        elif any(decoded.index is not None for decoded in result.events):
            plan.skipped.append(ReplaySkip(where, "not_an_event", "a line holds one event object, not an array"))
        else:
            events = tuple(decoded.event for decoded in result.events)
            plan.ready.append(ReplayMessage(events[0].project_id.encode(), line, events, where))
    return plan


def _replay_key(original: bytes | None, events: tuple[UsageTrackingEvent, ...]) -> bytes | None:
    # A keyed message passed the key check, so its key is its project_id already; a
    # keyless one gets the project_id as key (SPEC.md §1) when all its events share one.
    if original:
        return original
    projects = {event.project_id for event in events}
    return projects.pop().encode() if len(projects) == 1 else None
