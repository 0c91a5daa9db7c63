"""What `usage-pipeline dlq inspect` prints: the summary by reason, as a table or as JSON.

Rendering is kept apart from reading the topic so that it is a pure function of an
`InspectReport`, testable without Kafka; the JSON form is a stable interface for scripts
(its keys are listed in the command's help).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream_app.core.dead_letter import DeadLetter
    from stream_app.core.dead_letter_summary import ReasonSummary

_DETAIL_COLUMN = 72


@dataclass
class InspectReport:
    """What one read of the dead-letter topic found: totals, the summary by reason, the newest letters."""

    topic: str
    exists: bool
    total: int
    distinct: int
    unreadable: int
    reasons: list[ReasonSummary]
    entries: list[DeadLetter]


def render_inspect_json(report: InspectReport) -> str:
    """The report as one JSON object."""
    document = {
        "topic": report.topic,
        "dead_letters": report.total,
        "distinct_inputs": report.distinct,
        "unreadable": report.unreadable,
        "reasons": [summary.as_dict() for summary in report.reasons],
        "entries": [letter.as_dict() for letter in report.entries],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_inspect_table(report: InspectReport) -> str:
    """The report as aligned text: one line per reason, then the listed letters."""
    if not report.exists:
        return f"no dead letters: the topic {report.topic} does not exist yet\n"
    lines = [f"{report.total} dead letters on {report.topic} ({report.distinct} distinct inputs)"]
    if report.unreadable:
        lines.append(f"{report.unreadable} records on the topic are not dead letters this version can read")
    if report.reasons:
        rows = [
            [s.reason, str(s.count), str(s.distinct), _when(s.first_seen), _when(s.last_seen), _one_line(s.example_detail)]
            for s in report.reasons
        ]
        lines += ["", *_table(["reason", "count", "distinct", "first seen", "last seen", "example"], rows, numeric=frozenset({1, 2}))]
    if report.entries:
        from stream_app.core.dead_letter import describe_source

        rows = [
            [_when(letter.rejected_at), letter.reason, describe_source(letter), letter.event_id or "-", _one_line(letter.detail)]
            for letter in report.entries
        ]
        lines += ["", f"most recent {len(rows)}:", *_table(["rejected at", "reason", "source", "event_id", "detail"], rows)]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]], numeric: frozenset[int] = frozenset()) -> list[str]:
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_COLUMN else text[: _DETAIL_COLUMN - 1] + "…"
