"""Dead letters counted by reason: what `usage-pipeline dlq inspect` reports.

The dead-letter topic may be large and is read once, start to end, so the summary is a
running one fed a letter at a time. It counts records and distinct rejected inputs
apart, because a message redelivered after a crash is dead-lettered again at the same
source position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stream_app.core.dead_letter import DeadLetter


@dataclass(slots=True)
class ReasonSummary:
    """What the dead letters of one reason have in common."""

    reason: str
    count: int = 0  # dead-letter records
    distinct: int = 0  # distinct rejected inputs (a redelivered message is dead-lettered again)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    example_detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "count": self.count,
            "distinct": self.distinct,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "example_detail": self.example_detail,
        }


class DeadLetterSummary:
    """Running summary by reason; feed it letters one at a time (the topic may be large)."""

    def __init__(self) -> None:
        self._by_reason: dict[str, ReasonSummary] = {}
        self._inputs: set[tuple[str, int, int, int | None]] = set()
        self._inputs_by_reason: set[tuple[str, tuple[str, int, int, int | None]]] = set()
        self.total = 0

    def add(self, letter: DeadLetter) -> None:
        summary = self._by_reason.get(letter.reason)
        if summary is None:
            summary = self._by_reason[letter.reason] = ReasonSummary(letter.reason, example_detail=letter.detail)
        self.total += 1
        summary.count += 1
        self._inputs.add(letter.source_position)
        if (letter.reason, letter.source_position) not in self._inputs_by_reason:
            self._inputs_by_reason.add((letter.reason, letter.source_position))
            summary.distinct += 1
        at = letter.rejected_at
        if at is not None:
            if summary.first_seen is None or at < summary.first_seen:
                summary.first_seen = at
            if summary.last_seen is None or at > summary.last_seen:
                summary.last_seen = at

    @property
    def distinct(self) -> int:
        """Distinct rejected inputs over all reasons."""
        return len(self._inputs)

    def reasons(self) -> list[ReasonSummary]:
        """Most frequent reason first; ties by name."""
        return sorted(self._by_reason.values(), key=lambda s: (-s.count, s.reason))


def summarize_by_reason(letters: Iterable[DeadLetter]) -> list[ReasonSummary]:
    """Count, distinct inputs, first/last seen and an example detail per reason."""
    summary = DeadLetterSummary()
    for letter in letters:
        summary.add(letter)
    return summary.reasons()
