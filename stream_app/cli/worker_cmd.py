"""`usage-pipeline worker`: run one stream worker (start more to scale out)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from stream_app.settings import PipelineSettings

if TYPE_CHECKING:
    from stream_app.core.pricing import CatalogPricer


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
        help="check settings and the price file, reach the broker and ClickHouse, migrate the schema, then exit",
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
    from stream_app.broker.security import apply_kafka_settings
    from stream_app.core.pricing import CatalogPricer, configure_default_pricer
    from stream_app.broker.topics import ensure_topics_sync
    from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url
    from stream_app.sink.faults import parse_fault_plan
    from stream_app.worker.app import create_app
    from stream_app.worker.auth import check_listen_address, install_admin_auth
    from stream_app.worker.endpoint import publish_endpoint, withdraw_endpoint
    from stream_app.worker.gc_tuning import tune_for_throughput
    from stream_app.worker.pricing_pages import install_pricing_pages
    from stream_app.worker.dashboard_pages import install_worker_dashboard

    _configure_logging(settings.log_level)
    check_listen_address(settings.worker_web_host, settings.admin_token, "USAGE_WORKER_WEB_HOST")
    settings.home.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("stream_app.worker")
    # The price file is validated before anything else starts: a bad file stops the worker.
    pricer = CatalogPricer.from_settings(settings)
    configure_default_pricer(pricer)
    log.info("prices: %s", describe_prices(pricer))
    bootstrap = resolve_bootstrap(settings)
    location = parse_clickhouse_url(settings.resolved_clickhouse_url, ca_file=settings.clickhouse_ca_file)
    ensure_topics_sync(
        bootstrap,
        {settings.events_topic: settings.topic_partitions, settings.dlq_topic: settings.topic_partitions},
        security=settings.kafka_security,
        replication_factor=settings.topic_replication_factor,
    )
    sink = ClickHouseSink(
        location,
        window_seconds=settings.window_seconds,
        rejections_ttl_days=settings.rejections_ttl_days,
        fault_plan=parse_fault_plan(settings.sink_fault_plan),
    ).open()
    log.info("ClickHouse: %s (schema up to date)", location.display)
    log.info(
        "Kafka: %s (%s), topic %s, group %s",
        bootstrap, settings.kafka_security_protocol, settings.events_topic, settings.consumer_group,
    )
    if validate_only:
        sink.close()
        print("configuration OK", file=sys.stderr)
        return 0
    app = create_app(settings, bootstrap, sink)
    apply_kafka_settings(app, settings)
    install_pricing_pages(app, sink, settings, pricer.overrides.digest)
    install_worker_dashboard(app, sink)
    install_admin_auth(app.web.web_app, settings.admin_token)
    url = f"http://{_client_host(settings.worker_web_host)}:{settings.worker_web_port}"
    if location.kind == "chdb" and location.path is not None:
        publish_endpoint(location.path, url)
    log.info("worker HTTP endpoint: %s (/health /stats /metrics /report /prices/missing /prices/compare /reprice)", url)
    worker = _stoppable_worker_class(faust.Worker)(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    tune_for_throughput()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        if location.kind == "chdb" and location.path is not None:
            withdraw_endpoint(location.path)
        sink.close()
    return 0


def _stoppable_worker_class(base: type) -> type:
    """Faust's worker, told to also stop a chunk that is retrying a failing write.

    Faust alone waits for the chunk in hand, which could retry for as long as ClickHouse
    is down. With the stop flag set the retry loop gives up within a second, and the
    worker exits without committing that chunk (redelivered to whoever takes over);
    a write stuck in a long network timeout is cut after `STOP_GRACE_SECONDS`.
    """

    class StoppableWorker(base):  # type: ignore[misc, valid-type]
        def _on_sigterm(self) -> None:
            self._request_stop()
            super()._on_sigterm()

        def _on_sigint(self) -> None:
            self._request_stop()
            super()._on_sigint()

        def _request_stop(self) -> None:
            app = self.app
            app.usage_stop.set()
            if app.usage_sink.stats.retrying_since is not None:
                _exit_after(STOP_GRACE_SECONDS)

    return StoppableWorker


STOP_GRACE_SECONDS = 5.0


def _exit_after(seconds: float) -> None:
    import os
    import threading

    from stream_app.worker.app import EXIT_UNCOMMITTED

    def hard_exit() -> None:
        logging.getLogger("stream_app.worker").critical(
            "still writing %.0f s after being asked to stop while ClickHouse writes fail: exiting without committing",
            seconds,
        )
        logging.shutdown()
        os._exit(EXIT_UNCOMMITTED)

    timer = threading.Timer(seconds, hard_exit)
    timer.daemon = True
    timer.start()


def describe_prices(pricer: CatalogPricer) -> str:
    """One line for the log: the catalog release and the price file in use."""
    from stream_app.core.model_resolution import CATALOG_SOURCE

    overrides = pricer.overrides
    if overrides.empty and not overrides.origin:
        return f"{CATALOG_SOURCE} (bundled, offline); no price file (USAGE_PRICE_OVERRIDES_FILE unset)"
    return (
        f"{CATALOG_SOURCE} (bundled, offline); price file {overrides.origin}: "
        f"{len(overrides.overrides)} overrides, {len(overrides.aliases)} aliases"
    )


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
