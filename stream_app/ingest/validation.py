"""Judge an ingest request body with the stream worker's own decode, and the API key's projects.

Pure. A body is what a Kafka message value may be (one event object or a JSON array of up
to 1,000), so it goes through `stream_app.core.decode.decode_message` itself: one set of
rules, not a copy that drifts. An event accepted here is never dead-lettered later for its
content, and a body the worker would reject (a lone surrogate or `1e400` in `context`,
nesting too deep, prompt text in `context`) is a 4xx here, never a 5xx and never a
silently changed value. A request is accepted or rejected whole: a client fixing its
payload resends all of it, and nothing is half-billed or half-published.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas import UsageTrackingEvent
from stream_app.core.decode import (
    MAX_BATCH_EVENTS,
    MAX_MESSAGE_BYTES,
    MessageOrigin,
    RejectReason,
    Rejection,
    decode_message,
)
from stream_app.core.free_form import DEFAULT_DENIED_CONTEXT_KEYS

MAX_EVENTS_PER_REQUEST = MAX_BATCH_EVENTS
# A body is published as it would be consumed: no larger than a message the worker reads.
DEFAULT_MAX_BODY_BYTES = MAX_MESSAGE_BYTES
# A payload with hundreds of errors is usually one mistake repeated; the first ones say so.
MAX_PROBLEMS_REPORTED = 100
# Projects named in one 403: enough to act on, bounded for a hostile body.
MAX_PROJECTS_NAMED = 10
INGEST_ORIGIN = MessageOrigin("ingest-http", -1, -1, None)

# Whole-body reasons and their status: not JSON is 400, too big 413, the rest 422.
_STATUS_OF_REASON = {
    RejectReason.EMPTY_MESSAGE: 400,
    RejectReason.INVALID_UTF8: 400,
    RejectReason.INVALID_JSON: 400,
    RejectReason.MESSAGE_TOO_LARGE: 413,
    RejectReason.BATCH_TOO_LARGE: 413,
}


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
    reason: str | None = None  # the decode reason code, when one explains it all

    def body(self) -> dict[str, Any]:
        """The JSON answer: `error`, and `problems` naming each bad field."""
        answer: dict[str, Any] = {"error": self.error}
        if self.reason:
            answer["reason"] = self.reason
        if self.problems:
            answer["problems"] = [problem.as_dict() for problem in self.problems]
        return answer


def parse_ingest_body(
    body: bytes,
    *,
    now: datetime,
    max_future_skew: timedelta,
    denied_context_keys: frozenset[str] = DEFAULT_DENIED_CONTEXT_KEYS,
    allowed_projects: frozenset[str] | None = None,
) -> list[UsageTrackingEvent] | IngestRejection:
    """The events of a request body, or why it is refused.

    400 not JSON, 403 a project `allowed_projects` does not hold (None: any project),
    413 too big, 422 invalid. The 403 is decided before the 422, so a key cannot learn
    anything about another project's events from how they are validated.
    """
    result = decode_message(
        body, INGEST_ORIGIN, now=now, max_future_skew=max_future_skew, denied_context_keys=denied_context_keys
    )
    whole = [rejection for rejection in result.rejections if rejection.index is None and not result.events]
    if len(whole) == 1 and whole[0].reason in _STATUS_OF_REASON:
        return _whole_body_rejection(whole[0])
    if allowed_projects is not None:
        projects = {decoded.event.project_id for decoded in result.events}
        projects |= {r.project_id for r in result.rejections if r.project_id is not None}
        refused = forbidden_projects(projects, allowed_projects)
        if refused:
            return forbidden(refused)
    if result.rejections:
        return _invalid_events(result.rejections, total=len(result.events) + len(result.rejections))
    return [decoded.event for decoded in result.events]


def forbidden_projects(projects: Iterable[str], allowed: frozenset[str]) -> list[str]:
    """The projects of a request that the key may not write, sorted."""
    return sorted(project for project in set(projects) if project not in allowed)


def forbidden(projects: list[str]) -> IngestRejection:
    """The 403 naming the projects this API key may not write."""
    named = ", ".join(repr(_printable(p)) for p in projects[:MAX_PROJECTS_NAMED])
    more = f" and {len(projects) - MAX_PROJECTS_NAMED} more" if len(projects) > MAX_PROJECTS_NAMED else ""
    noun = "project" if len(projects) == 1 else "projects"
    return IngestRejection(
        403, f"this API key may not write {noun} {named}{more}; nothing of this request was published"
    )


def _whole_body_rejection(rejection: Rejection) -> IngestRejection:
    status = _STATUS_OF_REASON[rejection.reason]
    detail = rejection.detail.replace("message value", "body").replace("value is", "body is")
    detail = detail.replace("message is", "body is").replace("per message", "per request")
    return IngestRejection(status, detail, reason=rejection.reason)


def _invalid_events(rejections: list[Rejection], *, total: int) -> IngestRejection:
    problems = [
        FieldProblem(rejection.index, field, message)
        for rejection in rejections
        for field, message in (rejection.problems or (("", rejection.detail),))
    ]
    reasons = {rejection.reason for rejection in rejections}
    shown = tuple(problems[:MAX_PROBLEMS_REPORTED])
    more = f" (first {MAX_PROBLEMS_REPORTED} problems shown)" if len(problems) > MAX_PROBLEMS_REPORTED else ""
    if rejections[0].index is None and total == 1:
        error = f"the event is invalid ({rejections[0].reason}); nothing was accepted{more}"
    else:
        noun = "event is" if len(rejections) == 1 else "events are"
        error = f"{len(rejections)} of {total} {noun} invalid; nothing was accepted{more}"
    return IngestRejection(422, error, shown, reason=reasons.pop() if len(reasons) == 1 else None)


def _printable(text: str) -> str:
    return text[:128].encode("utf-8", "backslashreplace").decode("utf-8")
