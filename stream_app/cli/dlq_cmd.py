"""`usage-pipeline dlq inspect|export|replay`: look at dead letters, hand them out, re-submit them.

Every action reads the dead-letter topic from its beginning up to the end offsets it has
when the action starts, with no consumer group: nothing is committed, any number of
people can run it at once, and running workers are not disturbed. Needs Kafka only.

This module is the command line (arguments, exit statuses, what goes to stdout and
stderr); reading the topic is `dlq_topic`, rendering `inspect` is `dlq_report`, and the
decisions about letters (summary, export, replay plans) are pure, in `stream_app.core`.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING

from stream_app.cli.dlq_report import InspectReport, render_inspect_json, render_inspect_table
from stream_app.cli.dlq_topic import DeadLetterReader
from stream_app.cli.line_input import open_lines
from stream_app.errors import PipelineError

if TYPE_CHECKING:
    from producers.kafka_security import KafkaSecurity
    from stream_app.core.dead_letter import DeadLetter
    from stream_app.core.dead_letter_replay import ReplayMessage, ReplayPlan
    from stream_app.settings import PipelineSettings

# Messages published concurrently by a replay before it waits for their acknowledgements.
REPLAY_CHUNK = 500

_DESCRIPTION = """\
Dead letters are the inputs the worker could not bill: each holds the original bytes,
the reason, and where they came from (topic, partition, offset, batch index, key).
"""

_INSPECT_EPILOG = """\
Counts are dead-letter records; `distinct` counts distinct rejected inputs (a message
redelivered after a crash is dead-lettered again). --format json prints one object:
{"topic", "dead_letters", "distinct_inputs", "unreadable", "reasons": [...], "entries": [...]}.
"""

_EXPORT_EPILOG = """\
Writes one event per line (a rejected batch gives one line per element), as it arrived,
to standard output: fix the lines, then `usage-pipeline dlq replay --file FILE`.
Dead letters whose bytes are not UTF-8, or that hold only a prefix of an oversized
message, cannot be exported: they are listed on stderr with where the original is.

exit status: 0 all exported; 1 some could not be (listed on stderr); 2 Kafka unreachable
"""

_REPLAY_EPILOG = """\
Without --file, each dead letter's original bytes are validated again with the current
rules under their original key; those that now pass (e.g. a future_timestamp event whose
time has come) are re-published to the events topic byte for byte, with that key. With
--file, each line is a corrected event (one JSON object), validated the same way; bad
lines are reported as `line N: reason: detail` and not sent. Replaying twice is safe:
events are billed once per event_id. Replayed dead letters stay on the dead-letter topic.

exit status:
  0  everything selected was (or, with --dry-run, would be) replayed
  1  some dead letters or lines still fail (reported on stderr); the rest were replayed
  2  nothing or only part was published: file unreadable, Kafka unreachable or refused
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `dlq` command and its actions."""
    parser = subparsers.add_parser(
        "dlq",
        help="inspect, export and replay dead letters",
        description="Inspect, export and replay the dead-letter topic (USAGE_DLQ_TOPIC).\n\n" + _DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="dlq_action", required=True, metavar="ACTION")

    inspect = actions.add_parser(
        "inspect",
        help="summarise dead letters by reason",
        description="Summarise the dead letters by reason: count, first and last seen, an example detail.",
        epilog=_INSPECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("--limit", type=_non_negative, default=0, metavar="N", help="also list the N most recent dead letters")
    inspect.add_argument("--reason", metavar="R", help="only dead letters with this reason code")
    inspect.add_argument("--format", choices=("table", "json"), default="table")
    inspect.set_defaults(handler=run_inspect)

    export = actions.add_parser(
        "export",
        help="write the dead letters' original events, one per line",
        description="Write each dead letter's original event JSON to standard output, one per line.",
        epilog=_EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--reason", metavar="R", help="only dead letters with this reason code")
    export.set_defaults(handler=run_export)

    replay = actions.add_parser(
        "replay",
        help="re-submit dead letters that now pass, or corrected events from a file",
        description="Re-publish dead letters that pass the current rules, or corrected events from a file.",
        epilog=_REPLAY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("--reason", metavar="R", help="only dead letters with this reason code")
    replay.add_argument("--file", metavar="FILE", help="corrected events, one JSON object per line; `-` reads stdin")
    replay.add_argument("--dry-run", action="store_true", help="validate and report only; publish nothing")
    replay.set_defaults(handler=run_replay)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


# --- inspect ------------------------------------------------------------------------------


def run_inspect(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Print the summary by reason (and the most recent letters with --limit)."""
    report = asyncio.run(
        _inspect(
            _bootstrap(settings), settings.dlq_topic, reason=args.reason, limit=args.limit,
            security=settings.kafka_security,
        )
    )
    sys.stdout.write(render_inspect_json(report) if args.format == "json" else render_inspect_table(report))
    return 0


async def _inspect(
    bootstrap: str, topic: str, *, reason: str | None, limit: int, security: KafkaSecurity | None = None
) -> InspectReport:
    from stream_app.core.dead_letter_summary import DeadLetterSummary

    summary = DeadLetterSummary()
    latest: list[tuple[tuple[float, int, int], int, DeadLetter]] = []  # a min-heap of the newest `limit`
    unreadable = 0
    reader = DeadLetterReader(bootstrap, topic, security)
    async for letter in reader.letters():
        if letter is None:
            unreadable += 1
            continue
        if reason is not None and letter.reason != reason:
            continue
        summary.add(letter)
        if limit:
            rank = (letter.rejected_at.timestamp() if letter.rejected_at else 0.0, letter.dlq_partition, letter.dlq_offset)
            item = (rank, summary.total, letter)
            if len(latest) < limit:
                heapq.heappush(latest, item)
            else:
                heapq.heappushpop(latest, item)
    entries = [letter for _, _, letter in sorted(latest, key=lambda item: item[:2])]
    return InspectReport(topic, reader.exists, summary.total, summary.distinct, unreadable, summary.reasons(), entries)


# --- export -------------------------------------------------------------------------------


def run_export(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Write the selected letters' original events to stdout, one per line."""
    out = sys.stdout.buffer
    exported, letters, skipped = asyncio.run(
        _export(_bootstrap(settings), settings.dlq_topic, args.reason, out, settings.kafka_security)
    )
    out.flush()
    print(
        f"exported {_count(exported, 'event')} from {_count(letters, 'dead letter')}; "
        f"{_count(skipped, 'dead letter')} could not be exported",
        file=sys.stderr,
    )
    return 1 if skipped else 0


async def _export(
    bootstrap: str, topic: str, reason: str | None, out: IO[bytes], security: KafkaSecurity | None = None
) -> tuple[int, int, int]:
    from stream_app.core.dead_letter import DeadLetterFormatError, describe_source, export_lines

    exported = letters = skipped = 0
    seen: set[tuple[str, int, int, int | None]] = set()
    async for letter in DeadLetterReader(bootstrap, topic, security).letters():
        if letter is None or (reason is not None and letter.reason != reason) or letter.source_position in seen:
            continue
        seen.add(letter.source_position)
        letters += 1
        try:
            lines = export_lines(letter)
        except DeadLetterFormatError as exc:
            skipped += 1
            print(f"skipped {describe_source(letter)} ({letter.reason}): {exc}", file=sys.stderr)
            continue
        for line in lines:
            out.write(line.encode("utf-8") + b"\n")
        exported += len(lines)
    return exported, letters, skipped


# --- replay -------------------------------------------------------------------------------


def run_replay(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Re-publish what passes the current rules; report the rest on stderr."""
    if args.file and args.reason:
        raise PipelineError("--reason selects dead letters; it cannot be combined with --file")
    now = datetime.now(UTC)
    skew = timedelta(seconds=settings.max_future_skew_seconds)
    bootstrap = None if args.dry_run and args.file else _bootstrap(settings)
    if args.file:
        from stream_app.core.dead_letter_replay import plan_file_replay

        with open_lines(args.file) as lines:
            plan = plan_file_replay(lines, now=now, max_future_skew=skew, source_name=args.file)
    else:
        plan = asyncio.run(
            _plan_from_topic(bootstrap, settings.dlq_topic, now, skew, args.reason, settings.kafka_security)  # type: ignore[arg-type]
        )
    for skip in plan.skipped:
        print(f"{skip.origin}: {skip.reason}: {skip.detail}", file=sys.stderr)
    if not args.dry_run and plan.ready:
        asyncio.run(_publish(bootstrap, settings.events_topic, plan.ready, settings.kafka_security))  # type: ignore[arg-type]
    print(_replay_summary(plan, settings.events_topic, from_file=bool(args.file), dry_run=args.dry_run))
    return 1 if plan.skipped else 0


async def _plan_from_topic(
    bootstrap: str, topic: str, now: datetime, skew: timedelta, reason: str | None, security: KafkaSecurity | None = None
) -> ReplayPlan:
    from stream_app.core.dead_letter_replay import ReplayPlanner

    planner = ReplayPlanner(now=now, max_future_skew=skew, reason=reason)
    async for letter in DeadLetterReader(bootstrap, topic, security).letters():
        if letter is not None:
            planner.add(letter)
    return planner.plan


async def _publish(
    bootstrap: str, topic: str, messages: list[ReplayMessage], security: KafkaSecurity | None = None
) -> None:
    from producers import KafkaPublisher, ProducerError

    sent = 0
    try:
        # Room for the largest message a consumer accepts; the broker's own limit still applies.
        async with KafkaPublisher(
            bootstrap, topic, max_message_bytes=max(len(m.value) for m in messages), security=security
        ) as publisher:
            for start in range(0, len(messages), REPLAY_CHUNK):
                chunk = messages[start : start + REPLAY_CHUNK]
                await asyncio.gather(*(publisher.publish_raw(m.value, m.key) for m in chunk))
                sent += len(chunk)
    except ProducerError as exc:
        raise PipelineError(
            f"{exc} (replayed {sent} of {len(messages)} messages before the failure; replaying again is safe)"
        ) from exc


def _replay_summary(plan: ReplayPlan, topic: str, *, from_file: bool, dry_run: bool) -> str:
    unit = "line" if from_file else "dead letter"
    done = "would replay" if dry_run else "replayed"
    text = f"{done} {_count(plan.events, 'event')} from {_count(len(plan.ready), unit)} to {topic}"
    if plan.skipped:
        reasons = Counter(skip.reason for skip in plan.skipped)
        by_reason = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
        text += f"; {_count(len(plan.skipped), unit)} still fail ({by_reason})"
    if plan.repeats:
        text += f"; {plan.repeats} repeated dead letters of the same inputs ignored"
    return text + ("; published nothing (dry run)" if dry_run else "")


def _bootstrap(settings: PipelineSettings) -> str:
    # Imported here: the broker module is only needed when Kafka is really used.
    from stream_app.broker.local import resolve_bootstrap

    return resolve_bootstrap(settings)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
