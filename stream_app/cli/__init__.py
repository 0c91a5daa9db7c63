"""`usage-pipeline`: one console script, one module per command (SPEC.md §4).

Each command module has `register(subparsers)`, which adds its parser and sets
`handler(args, settings) -> int`. Command modules are imported lazily so that `emit`
and `kafka` start fast and need no ClickHouse.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from stream_app.errors import PipelineError

COMMAND_MODULES = (
    "stream_app.cli.demo_cmd",
    "stream_app.cli.worker_cmd",
    "stream_app.cli.kafka_cmd",
    "stream_app.cli.clickhouse_cmd",
    "stream_app.cli.emit_cmd",
    "stream_app.cli.report_cmd",
    "stream_app.cli.dlq_cmd",
    "stream_app.cli.ingest_cmd",
    "stream_app.cli.keys_cmd",
    "stream_app.cli.prices_cmd",
    "stream_app.cli.reprice_cmd",
    "stream_app.cli.dashboard_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(
        prog="usage-pipeline",
        description="Meter LLM usage exactly: producers -> Kafka -> Faust -> ClickHouse.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    from stream_app.settings import load_settings

    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        return int(args.handler(args, settings) or 0)
    except PipelineError as exc:
        print(f"usage-pipeline {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
