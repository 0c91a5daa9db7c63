"""Validate an ingest request body exactly as the stream worker validates a Kafka message.

Pure. A body is one event object or a JSON array of up to 1,000; each is checked by the
same pydantic model the consumers use (`UsageTrackingEvent.model_validate` on the parsed
JSON, like `stream_app.core.decode`), plus the consumer's future-timestamp rule, so an
event accepted here is never dead-lettered later for its content. A request is accepted
or rejected whole: a client fixing its payload resends all of it, and nothing is half-billed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from schemas import UsageTrackingEvent
from schemas.validation_errors import error_field_path, error_message

MAX_EVENTS_PER_REQUEST = 1000
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# A payload with hundreds of errors is usually one mistake repeated; the first ones say so.
MAX_PROBLEMS_REPORTED = 100


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong: which event (its index in the list; None for a single object), which field, why."""

    index: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form in a 422 answer."""
        return {"index": self.index, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class IngestRejection:
    """Why a request is refused, as an HTTP status and a JSON body."""

    status: int
    error: str
    problems: tuple[FieldProblem, ...] = ()

    def body(self) -> dict[str, Any]:
        """The JSON answer: `error`, and `problems` naming each bad field."""
        answer: dict[str, Any] = {"error": self.error}
        if self.problems:
            answer["problems"] = [problem.as_dict() for problem in self.problems]
        return answer


def parse_ingest_body(
    body: bytes, *, now: datetime, max_future_skew: timedelta
) -> list[UsageTrackingEvent] | IngestRejection:
    """The events of a request body, or why it is refused (400 not JSON, 413 too many, 422 invalid)."""
    if not body.strip():
        return IngestRejection(400, "empty body: send one event object or a JSON array of events")
    try:
        parsed = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        return IngestRejection(400, f"body is not UTF-8: {exc}")
    except ValueError as exc:
        return IngestRejection(400, f"body is not JSON: {exc}")
    if isinstance(parsed, dict):
        items: list[tuple[int | None, Any]] = [(None, parsed)]
    elif isinstance(parsed, list):
        if not parsed:
            return IngestRejection(422, "empty list: send at least one event")
        if len(parsed) > MAX_EVENTS_PER_REQUEST:
            return IngestRejection(
                413, f"{len(parsed)} events in one request; at most {MAX_EVENTS_PER_REQUEST}: split the list"
            )
        items = list(enumerate(parsed))
    else:
        return IngestRejection(422, f"body is a JSON {type(parsed).__name__}; send an event object or an array of them")
    return _validate_items(items, now, max_future_skew)


def _validate_items(
    items: list[tuple[int | None, Any]], now: datetime, max_future_skew: timedelta
) -> list[UsageTrackingEvent] | IngestRejection:
    events: list[UsageTrackingEvent] = []
    problems: list[FieldProblem] = []
    invalid = 0
    for index, item in items:
        found = _problems_of(index, item, now, max_future_skew, events)
        if found:
            invalid += 1
            problems.extend(found)
    if not problems:
        return events
    shown = tuple(problems[:MAX_PROBLEMS_REPORTED])
    more = f" (first {MAX_PROBLEMS_REPORTED} problems shown)" if len(problems) > MAX_PROBLEMS_REPORTED else ""
    noun = "event is" if invalid == 1 else "events are"
    return IngestRejection(422, f"{invalid} of {len(items)} {noun} invalid; nothing was accepted{more}", shown)


def _problems_of(
    index: int | None, item: Any, now: datetime, max_future_skew: timedelta, events: list[UsageTrackingEvent]
) -> list[FieldProblem]:
    if not isinstance(item, dict):
        return [FieldProblem(index, "", f"must be an event object, not a JSON {type(item).__name__}")]
    try:
        event = UsageTrackingEvent.model_validate(item)
    except ValidationError as exc:
        return [
            FieldProblem(index, error_field_path(error["loc"]), error_message(error))
            for error in exc.errors(include_url=False, include_input=False)
        ]
    if event.timestamp - now > max_future_skew:
        return [
            FieldProblem(
                index,
                "timestamp",
                f"{event.timestamp.isoformat()} is more than {int(max_future_skew.total_seconds())} s in the "
                f"future (server clock {now.isoformat()}); it is the time the call finished",
            )
        ]
    events.append(event)
    return []


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259)")
