"""Read events from JSON Lines: one event object per line, bad lines reported, not fatal.

Pure: takes lines, returns events and rejections. Each line is validated exactly as a
consumer validates a message (`model_validate_json`), so whatever passes here passes there.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from schemas import UsageTrackingEvent
from schemas.validation_errors import error_field_path, error_message

# A line with dozens of problems is usually not an event at all; the first few say so.
_MAX_ERRORS_IN_REASON = 10


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line that is not a valid event: its 1-based number and a readable reason."""

    line_number: int
    reason: str


def parse_jsonl(lines: Iterable[str | bytes]) -> tuple[list[UsageTrackingEvent], list[Rejection]]:
    """Validate every non-blank line as a `UsageTrackingEvent`.

    Returns the valid events in file order and one `Rejection` per bad line. Line numbers
    are 1-based and count blank lines, so they match what an editor shows.
    """
    events: list[UsageTrackingEvent] = []
    rejections: list[Rejection] = []
    for _line_number, parsed in iter_jsonl(lines):
        if isinstance(parsed, Rejection):
            rejections.append(parsed)
        else:
            events.append(parsed)
    return events, rejections


def iter_jsonl(lines: Iterable[str | bytes]) -> Iterator[tuple[int, UsageTrackingEvent | Rejection]]:
    """Stream `(line_number, event or rejection)` for each non-blank line.

    The streaming form of `parse_jsonl`, for files too large to hold at once and for
    callers that need the line number of a good event too.
    """
    for line_number, line in enumerate(lines, start=1):
        text = _strip_line(line, first=line_number == 1)
        if not text:
            continue
        try:
            yield line_number, UsageTrackingEvent.model_validate_json(text)
        except ValidationError as exc:
            yield line_number, Rejection(line_number, format_validation_error(exc))


def format_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field: `usage.input_tokens: Input should be ...; ...`."""
    errors = exc.errors(include_url=False, include_input=False)
    described = [_describe_error(error) for error in errors[:_MAX_ERRORS_IN_REASON]]
    if len(errors) > _MAX_ERRORS_IN_REASON:
        described.append(f"... and {len(errors) - _MAX_ERRORS_IN_REASON} more errors")
    return "; ".join(described)


def _strip_line(line: str | bytes, *, first: bool) -> str | bytes:
    # Editors on Windows like to start files with a BOM; it is not part of the JSON.
    if first:
        line = line.removeprefix(codecs.BOM_UTF8) if isinstance(line, bytes) else line.removeprefix("\ufeff")
    return line.strip()


def _describe_error(error: dict) -> str:
    path = error_field_path(error["loc"])
    message = error_message(error)
    return f"{path}: {message}" if path else message
