"""`usage-pipeline ingest-http`: accept usage events over HTTP from services in any language."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

from stream_app.errors import PipelineError

if TYPE_CHECKING:
    from stream_app.settings import PipelineSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8088

_EPILOG = """\
POST /v1/events takes one UsageTrackingEvent (SPEC §1) or a JSON array of up to 1,000,
validated against the same schema as the stream worker's. Answers:
  202 {"accepted": N, "event_ids": [...]}   published to Kafka and acknowledged
  401 no or unknown API key    403 a project the key may not write (nothing published)
  400 body is not JSON    413 body or list too large    503 Kafka unavailable (resend later)
  422 {"error": ..., "problems": [{"index": 0, "field": "usage.input_tokens", "message": ...}]}
A request is accepted or refused whole. Resending the same events is safe: each event_id
is billed once. GET /v1/schema returns the JSON Schema; GET /healthz a health check.

Every request needs an API key bound to its projects: `usage-pipeline keys create --project P`.

example:
  curl -sS -X POST http://127.0.0.1:8088/v1/events -H "Authorization: Bearer $KEY" \\
    -H 'Content-Type: application/json' \\
    -d '{"schema_version":1,"event_id":"6f1c...","timestamp":"2026-11-22T10:00:00Z", ...}'
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `ingest-http` command."""
    parser = subparsers.add_parser(
        "ingest-http",
        help="serve POST /v1/events: validate usage events sent over HTTP and publish them to Kafka",
        description="Accept usage events over HTTP (services in any language) and publish them to Kafka.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}; "
                        "0.0.0.0 to accept other machines: put TLS in front of it, API keys travel in a header)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--max-body-bytes", type=int, default=None,
        help="largest request body accepted (default and most: 4 MiB, the largest message the worker reads)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Serve until interrupted; publishes to `settings.events_topic`."""
    from aiohttp import web

    from stream_app.broker.local import resolve_bootstrap
    from stream_app.ingest.keys import KeyFile
    from stream_app.ingest.server import IngestConfig, build_app
    from stream_app.ingest.validation import DEFAULT_MAX_BODY_BYTES

    if not 0 < args.port < 65_536:
        raise PipelineError(f"--port {args.port} is not a TCP port")
    max_body = args.max_body_bytes or DEFAULT_MAX_BODY_BYTES
    if max_body < 1024:
        raise PipelineError(f"--max-body-bytes {max_body} is too small for one event")
    if max_body > DEFAULT_MAX_BODY_BYTES:
        raise PipelineError(
            f"--max-body-bytes {max_body}: at most {DEFAULT_MAX_BODY_BYTES}, the largest message the worker reads"
        )
    key_file = KeyFile(settings.resolved_ingest_keys_file)
    active = [key for key in key_file.keys().values() if key.active]
    config = IngestConfig(
        bootstrap_servers=resolve_bootstrap(settings),
        topic=settings.events_topic,
        key_file=key_file,
        max_body_bytes=max_body,
        max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
        denied_context_keys=settings.context_deny_key_set,
        security=settings.kafka_security,
    )
    if not active:
        print(
            f"ingest-http: no active API key in {key_file.path}: every request gets 401 until you run "
            "`usage-pipeline keys create --project P`",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"ingest-http: POST http://{args.host}:{args.port}/v1/events -> Kafka {config.bootstrap_servers} "
        f"topic {config.topic} (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    try:
        web.run_app(build_app(config), host=args.host, port=args.port, print=None, handle_signals=True)
    except OSError as exc:
        raise PipelineError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0
