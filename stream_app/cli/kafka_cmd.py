"""`usage-pipeline kafka up|down|status`: the local Kafka broker (a JVM process, no Docker).

The broker lives in `<USAGE_PIPELINE_HOME>/kafka`; its jars are fetched with Maven once
and cached in `$XDG_CACHE_HOME/usage-pipeline` (see stream_app/broker/local.py).
Progress goes to stderr; `up` prints the bootstrap address alone on the last line of
stdout, so `export KAFKA_BOOTSTRAP_SERVERS=$(usage-pipeline kafka up)` works.

`--secure` runs a second broker, in `<USAGE_PIPELINE_HOME>/kafka-secure`, whose only client
listener is SASL_SSL (SCRAM-SHA-512, a CA it generates); `up --secure` prints the client
settings as `export NAME=value` lines, so `eval "$(usage-pipeline kafka up --secure)"` works.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from stream_app.broker.local import LocalKafkaBroker
from stream_app.settings import PipelineSettings

EXIT_NOT_RUNNING = 3  # As `systemctl status` and `pg_ctl status` say "not running".


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `kafka` and its actions to the command tree."""
    parser = subparsers.add_parser(
        "kafka",
        help="run a local Apache Kafka broker (a JVM process, no Docker)",
        description=(
            "A single-node Kafka broker (KRaft) on 127.0.0.1 for development and tests, "
            "kept in <USAGE_PIPELINE_HOME>/kafka. Other commands use it when "
            "KAFKA_BOOTSTRAP_SERVERS is not set. Needs Java 17+, and Maven the first time."
        ),
    )
    actions = parser.add_subparsers(dest="kafka_action", required=True, metavar="ACTION")

    up = actions.add_parser(
        "up",
        help="start the broker unless it runs; print its bootstrap address",
        description=(
            "Start the broker (fetching its jars the first time) and wait until it answers. "
            "Does nothing but print the address if it already runs. Without --port: the "
            "port of the last start if free, else 9092 if free, else any free port."
        ),
    )
    up.add_argument("--port", type=int, default=None, metavar="N", help="listen on 127.0.0.1:N")
    _secure_flag(up)
    up.set_defaults(handler=run_up)

    down = actions.add_parser("down", help="stop the broker (its data is kept)")
    _secure_flag(down)
    down.set_defaults(handler=run_down)

    status = actions.add_parser(
        "status", help=f"say whether the broker runs and where (exit {EXIT_NOT_RUNNING} if not)"
    )
    _secure_flag(status)
    status.set_defaults(handler=run_status)


def _secure_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secure",
        action="store_true",
        help="the SASL_SSL broker (SCRAM-SHA-512, generated CA) in <USAGE_PIPELINE_HOME>/kafka-secure; "
        "`up --secure` prints `export NAME=value` lines for its clients",
    )


def broker_home(settings: PipelineSettings, secure: bool) -> Path:
    """Where the plaintext or the secure local broker lives: two homes, so both can run."""
    return settings.home / "kafka-secure" if secure else settings.kafka_home


def export_lines(settings: dict[str, str]) -> str:
    """`export NAME=value` lines, shell-quoted."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in settings.items())


def run_up(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Start the broker; the bootstrap address goes alone on stdout's last line."""
    if settings.kafka_bootstrap_servers:
        _note(
            f"note: KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} is set, so the "
            "other commands use that rather than this broker"
        )
    broker = LocalKafkaBroker(broker_home(settings, args.secure), port=args.port, progress=_note, secure=args.secure)
    bootstrap = broker.up()
    if args.secure:
        from stream_app.broker.tls import client_exports

        _note("clients of this broker need these settings (the password is shown because you asked for it):")
        print(export_lines(client_exports(bootstrap, broker.secure_material())), end="", flush=True)
        return 0
    print(bootstrap, flush=True)
    return 0


def run_down(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Stop the broker if it runs."""
    broker = LocalKafkaBroker(broker_home(settings, args.secure), progress=_note)
    if broker.down():
        _note("the Kafka broker stopped")
    else:
        _note(f"no Kafka broker was running from {broker.home}")
    return 0


def run_status(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Print where the broker runs, or that it does not."""
    status = LocalKafkaBroker(broker_home(settings, args.secure), progress=_note).status()
    if status.running:
        print(f"running at {status.bootstrap} (pid {status.pid}, data {status.data_dir})")
        return 0
    print(f"not running (data {status.data_dir})")
    return EXIT_NOT_RUNNING


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
