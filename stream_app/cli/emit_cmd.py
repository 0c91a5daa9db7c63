"""`usage-pipeline emit FILE`: validate a JSON Lines file of events and publish the good ones.

Reads the file as a stream, so its size is not bounded by memory: events are validated,
then published in chunks, each chunk awaited before the next is read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream_app.cli.line_input import open_lines
from stream_app.errors import PipelineError

if TYPE_CHECKING:
    from producers import KafkaPublisher
    from producers.jsonl import Rejection
    from schemas import UsageTrackingEvent
    from stream_app.settings import PipelineSettings

# Events validated before a publish round trip; also how often progress is reported.
CHUNK_EVENTS = 10_000

_EPILOG = """\
Each line is one UsageTrackingEvent (SPEC §1) as a JSON object; blank lines are skipped.
Invalid lines are reported on stderr as `line N: reason`; the valid ones are still published,
batched per project_id and keyed by it. Publishing the same file twice is safe: events are
billed once per event_id.

exit status:
  0  every line was a valid event and all were published
  1  some lines were rejected (reported on stderr); all valid lines were published
  2  nothing or only part was published: file unreadable, Kafka unreachable or refused
"""


@dataclass(slots=True)
class _Tally:
    events: int = 0
    messages: int = 0
    rejected: int = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `emit` command."""
    parser = subparsers.add_parser(
        "emit",
        help="validate and publish events from a JSON Lines file",
        description="Validate usage events, one JSON object per line, and publish the valid ones to Kafka.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="JSON Lines file of events; `-` reads standard input")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and report only; publish nothing and need no broker",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Validate FILE, publish its valid events to `settings.events_topic`, print a summary.

    Returns 0 if every line was valid, 1 if some were rejected (the rest are published).
    Failures to read the file or to publish raise `PipelineError` (exit status 2).
    """
    topic = settings.events_topic
    with open_lines(args.file) as lines:
        if args.dry_run:
            tally = _validate_only(lines)
        else:
            tally = asyncio.run(_publish_lines(lines, _bootstrap(settings), topic, settings.kafka_security))
    print(_summary(tally, topic, dry_run=args.dry_run))
    return 1 if tally.rejected else 0


def _bootstrap(settings: PipelineSettings) -> str:
    # Imported here: the broker module is only needed when something is really published.
    from stream_app.broker.local import resolve_bootstrap

    return resolve_bootstrap(settings)


def _validate_only(lines: Iterable[bytes]) -> _Tally:
    from producers.jsonl import Rejection, iter_jsonl

    tally = _Tally()
    for _, parsed in iter_jsonl(lines):
        if isinstance(parsed, Rejection):
            _report_rejection(parsed, tally)
        else:
            tally.events += 1
    return tally


async def _publish_lines(lines: Iterable[bytes], bootstrap: str, topic: str, security: Any = None) -> _Tally:
    from producers import KafkaPublisher, ProducerError

    tally = _Tally()
    try:
        async with KafkaPublisher(bootstrap, topic, security=security) as publisher:
            for chunk in _chunks_of_events(lines, tally):
                await _publish_chunk(publisher, chunk, tally)
                _report_progress(tally, chunk_was_full=len(chunk) == CHUNK_EVENTS)
    except ProducerError as exc:
        raise PipelineError(
            f"{exc} (published {tally.events} events before the failure; "
            "emitting the file again is safe)"
        ) from exc
    return tally


def _chunks_of_events(
    lines: Iterable[bytes], tally: _Tally
) -> Iterator[list[tuple[int, UsageTrackingEvent]]]:
    from producers.jsonl import Rejection, iter_jsonl

    chunk: list[tuple[int, UsageTrackingEvent]] = []
    for line_number, parsed in iter_jsonl(lines):
        if isinstance(parsed, Rejection):
            _report_rejection(parsed, tally)
            continue
        chunk.append((line_number, parsed))
        if len(chunk) == CHUNK_EVENTS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _publish_chunk(
    publisher: KafkaPublisher, chunk: list[tuple[int, UsageTrackingEvent]], tally: _Tally
) -> None:
    from producers.errors import EventTooLargeError
    from producers.jsonl import Rejection

    # A valid event can still be too big for one message; publish() raises before sending
    # anything, so reject that event's line(s) and send the rest.
    while True:
        try:
            result = await publisher.publish([event for _, event in chunk])
        except EventTooLargeError as exc:
            for line_number, event in chunk:
                if event.event_id == exc.event_id:
                    _report_rejection(Rejection(line_number, str(exc)), tally)
            chunk = [(n, event) for n, event in chunk if event.event_id != exc.event_id]
            continue
        tally.events += result.events
        tally.messages += result.messages
        return


def _report_rejection(rejection: Rejection, tally: _Tally) -> None:
    tally.rejected += 1
    print(f"line {rejection.line_number}: {rejection.reason}", file=sys.stderr)


def _report_progress(tally: _Tally, *, chunk_was_full: bool) -> None:
    # Only a full chunk may be followed by more; a short file gets just the summary.
    if chunk_was_full:
        print(f"emit: {tally.events} events published so far...", file=sys.stderr, flush=True)


def _summary(tally: _Tally, topic: str, *, dry_run: bool) -> str:
    rejected = f"rejected {_count(tally.rejected, 'line')}"
    if dry_run:
        return f"validated {_count(tally.events, 'event')}, published nothing (dry run); {rejected}"
    return (
        f"published {_count(tally.events, 'event')} in {_count(tally.messages, 'message')} "
        f"to {topic}; {rejected}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
