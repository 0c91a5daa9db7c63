"""`usage-pipeline worker`: run one stream worker (start more to scale out)."""

from __future__ import annotations

import argparse
import logging
import sys

from stream_app.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run the stream worker (scale out by starting more)",
        description=(
            "Consume usage events from Kafka, dead-letter bad ones, price the rest and write raw "
            "and windowed rows to ClickHouse. Workers with the same USAGE_CONSUMER_GROUP share the "
            "topic's partitions."
        ),
    )
    parser.add_argument("--web-port", type=int, help="HTTP port for /health, /stats, /metrics, /report (USAGE_WORKER_WEB_PORT)")
    parser.add_argument(
        "--validate-only",
        action="store_true",
        help="check settings, reach the broker and ClickHouse, migrate the schema, then exit",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from stream_app.settings import load_settings

    if args.web_port is not None:
        settings = load_settings(worker_web_port=args.web_port)
    return run_worker(settings, validate_only=args.validate_only)


def run_worker(settings: PipelineSettings, *, validate_only: bool = False) -> int:
    """Start the worker and block until it stops (SIGTERM/SIGINT)."""
    import faust

    from stream_app.broker.local import resolve_bootstrap
    from stream_app.broker.topics import ensure_topics_sync
    from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url
    from stream_app.sink.faults import parse_fault_plan
    from stream_app.worker.app import create_app
    from stream_app.worker.endpoint import publish_endpoint, withdraw_endpoint

    _configure_logging(settings.log_level)
    settings.home.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("stream_app.worker")
    bootstrap = resolve_bootstrap(settings)
    location = parse_clickhouse_url(settings.resolved_clickhouse_url)
    ensure_topics_sync(bootstrap, {settings.events_topic: settings.topic_partitions, settings.dlq_topic: settings.topic_partitions})
    sink = ClickHouseSink(
        location,
        window_seconds=settings.window_seconds,
        retry_initial_seconds=settings.sink_retry_initial_seconds,
        retry_max_seconds=settings.sink_retry_max_seconds,
        fault_plan=parse_fault_plan(settings.sink_fault_plan),
    ).open()
    log.info("ClickHouse: %s (schema up to date)", location.display)
    log.info("Kafka: %s, topic %s, group %s", bootstrap, settings.events_topic, settings.consumer_group)
    if validate_only:
        sink.close()
        print("configuration OK", file=sys.stderr)
        return 0
    app = create_app(settings, bootstrap, sink)
    url = f"http://{_client_host(settings.worker_web_host)}:{settings.worker_web_port}"
    if location.kind == "chdb" and location.path is not None:
        publish_endpoint(location.path, url)
    log.info("worker HTTP endpoint: %s (/health /stats /metrics /report)", url)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        if location.kind == "chdb" and location.path is not None:
            withdraw_endpoint(location.path)
        sink.close()
    return 0


def _client_host(bind_host: str) -> str:
    return "127.0.0.1" if bind_host in {"0.0.0.0", "", "::"} else bind_host


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Faust and aiokafka are chatty at INFO; our own logger says what matters.
    for noisy in ("faust", "mode", "aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
