"""The ClickHouse sink: open the store, migrate it, write chunks until they are written.

The same code talks to the embedded engine (`chdb:///dir`) and a server (`http://…`)
through clickhouse-connect. A chunk write is retried with backoff until it succeeds:
the caller acks Kafka offsets only after `write_chunk` returns, and Faust would commit
past a chunk whose body raised (INFRA.md), so giving up is never an option here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

from stream_app.core.repricing import RepriceSummary, UsagePricer, reprice_rows
from stream_app.core.rows import EVENT_COLUMNS, REJECTION_COLUMNS, ChunkRows
from stream_app.errors import ConfigurationError, SinkError
from stream_app.sink.faults import FaultPlan, FaultyClient
from stream_app.sink.queries import (
    MISSING_PRICE_COLUMNS,
    PROVIDER_COST_COLUMNS,
    EventScope,
    ReportQuery,
    missing_prices_sql,
    pricing_records,
    provider_cost_sql,
    report_records,
    report_sql,
    reprice_page_sql,
    stale_windows_sql,
)
from stream_app.sink.schema import (
    MIGRATIONS_TABLE,
    bootstrap_statements,
    migrations,
    pending_migrations,
    quote_identifier,
    window_recompute_sql,
)

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "usage"


@dataclass(frozen=True)
class ClickHouseLocation:
    """Where ClickHouse is, parsed from `CLICKHOUSE_URL`."""

    kind: str  # "chdb" or "http"
    database: str
    path: Path | None = None
    host: str = ""
    port: int = 8123
    username: str = "default"
    password: SecretStr = SecretStr("")  # never in a repr, a log or an error
    secure: bool = False
    ca_file: Path | None = None  # CLICKHOUSE_CA_FILE: the private CA of an https:// server

    @property
    def display(self) -> str:
        if self.kind == "chdb":
            return f"chdb://{self.path} (database {self.database})"
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{self.database}"


def parse_clickhouse_url(url: str, ca_file: Path | None = None) -> ClickHouseLocation:
    """`chdb:///abs/dir[?database=db]` or `http(s)://user:pass@host:port/db`."""
    parts = urlsplit(url)
    url = redact_url_password(url)  # from here on, only for messages
    if parts.scheme == "chdb":
        raw_path = unquote(parts.netloc + parts.path)
        if not raw_path.startswith("/"):
            raise ConfigurationError(
                f"CLICKHOUSE_URL={url!r}: the embedded store needs an absolute directory, "
                "e.g. chdb:///var/lib/usage-pipeline/clickhouse"
            )
        database = parse_qs(parts.query).get("database", [DEFAULT_DATABASE])[0]
        return ClickHouseLocation("chdb", database, path=Path(raw_path))
    if parts.scheme in {"http", "https"}:
        if not parts.hostname:
            raise ConfigurationError(f"CLICKHOUSE_URL={url!r} has no host; use http://user:pass@host:8123/db")
        database = parts.path.strip("/") or DEFAULT_DATABASE
        return ClickHouseLocation(
            "http",
            database,
            host=parts.hostname,
            port=parts.port or (8443 if parts.scheme == "https" else 8123),
            username=unquote(parts.username or "default"),
            password=SecretStr(unquote(parts.password or "")),
            secure=parts.scheme == "https",
            ca_file=ca_file,
        )
    raise ConfigurationError(
        f"CLICKHOUSE_URL={url!r}: use chdb:///absolute/dir or http(s)://user:pass@host:8123/db"
    )


def redact_url_password(url: str) -> str:
    """`url` with the password of its user part replaced by `***`, for messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or ":" not in userinfo or "/" in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


class ClickHouseClient(Protocol):
    def command(self, cmd: str, *args: Any, **kwargs: Any) -> Any: ...
    def query(self, query: str, *args: Any, **kwargs: Any) -> Any: ...
    def insert(self, table: str, data: Any, *args: Any, **kwargs: Any) -> Any: ...
    def close(self) -> None: ...


def connect(location: ClickHouseLocation) -> ClickHouseClient:
    """A clickhouse-connect client for the location (opens the embedded store)."""
    import clickhouse_connect

    try:
        if location.kind == "chdb":
            assert location.path is not None
            location.path.mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(dsn=f"chdb://{location.path}")
        return clickhouse_connect.get_client(
            host=location.host,
            port=location.port,
            username=location.username,
            password=location.password.get_secret_value(),
            secure=location.secure,
            # https verifies the server's certificate (clickhouse-connect's default, kept explicit).
            verify=True,
            ca_cert=str(location.ca_file) if location.ca_file else None,
        )
    except Exception as exc:
        hint = (
            " (the embedded store can be opened by one process at a time: is a worker running? "
            "`usage-pipeline report` asks a running worker instead)"
            if location.kind == "chdb"
            else ""
        )
        raise SinkError(f"cannot open ClickHouse at {location.display}: {exc}{hint}") from exc


@dataclass
class SinkStats:
    """Counters a person would alert on."""

    chunks_written: int = 0
    events_written: int = 0
    rejections_written: int = 0
    write_failures: int = 0
    retrying_since: float | None = None


class ClickHouseSink:
    """Writes priced events, recomputed windows and rejections; answers billing queries."""

    def __init__(
        self,
        location: ClickHouseLocation,
        *,
        window_seconds: int,
        retry_initial_seconds: float = 0.2,
        retry_max_seconds: float = 10.0,
        fault_plan: FaultPlan | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.location = location
        self.window_seconds = window_seconds
        self.retry_initial_seconds = retry_initial_seconds
        self.retry_max_seconds = retry_max_seconds
        self.fault_plan = fault_plan or FaultPlan()
        self.stats = SinkStats()
        self._sleep = sleep
        self._client: ClickHouseClient | None = None
        # chDB is one in-process engine: writes and the worker's report page share it.
        self._lock = threading.Lock()

    @property
    def db(self) -> str:
        return quote_identifier(self.location.database)

    def open(self) -> ClickHouseSink:
        """Connect and bring the schema up to date (idempotent)."""
        self._client = connect(self.location)
        self.migrate()
        if self.fault_plan.active:
            # Faults are for chunk writes; start-up must not be the thing that fails.
            self._client = FaultyClient(self._client, self.fault_plan)
        return self

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> ClickHouseSink:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> ClickHouseClient:
        if self._client is None:
            raise SinkError("the sink is not open")
        return self._client

    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied now."""
        with self._lock:
            for statement in bootstrap_statements(self.location.database):
                self.client.command(statement)
            applied = [row[0] for row in self.client.query(f"SELECT version FROM {self.db}.{MIGRATIONS_TABLE} FINAL").result_rows]
            done = []
            for migration in pending_migrations(migrations(self.location.database), applied):
                for statement in migration.statements:
                    self.client.command(statement)
                self.client.insert(
                    MIGRATIONS_TABLE,
                    [[migration.version, migration.description]],
                    column_names=["version", "description"],
                    database=self.location.database,
                )
                done.append(migration.version)
                log.info("applied ClickHouse migration %d: %s", migration.version, migration.description)
            return done

    def write_chunk(self, chunk: ChunkRows) -> int:
        """Write a chunk, retrying with backoff until it succeeds; returns the attempts made.

        Each step is idempotent (replacing tables, recomputed windows), so a retry after
        a write that succeeded but reported failure doubles nothing.
        """
        delay = self.retry_initial_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                self._write_once(chunk)
            except Exception as exc:  # any failure: the chunk must not be skipped
                self.stats.write_failures += 1
                if self.stats.retrying_since is None:
                    self.stats.retrying_since = time.time()
                log.warning(
                    "ClickHouse write failed (attempt %d, %d events held, offsets not committed): %s; "
                    "retrying in %.1f s",
                    attempt,
                    chunk.events,
                    _one_line(exc),
                    delay,
                )
                self._sleep(delay)
                delay = min(delay * 2, self.retry_max_seconds)
                continue
            if attempt > 1:
                log.warning("ClickHouse write succeeded after %d attempts", attempt)
            self.stats.retrying_since = None
            self.stats.chunks_written += 1
            self.stats.events_written += chunk.events
            self.stats.rejections_written += len(chunk.rejection_rows)
            return attempt

    def _write_once(self, chunk: ChunkRows) -> None:
        with self._lock:
            if chunk.event_rows:
                self.client.insert(
                    "usage_events", chunk.event_rows, column_names=list(EVENT_COLUMNS), database=self.location.database
                )
                self.client.command(
                    window_recompute_sql(self.location.database, chunk.touched_windows, self.window_seconds)
                )
            if chunk.rejection_rows:
                self.client.insert(
                    "usage_rejections",
                    chunk.rejection_rows,
                    column_names=list(REJECTION_COLUMNS),
                    database=self.location.database,
                )

    def report(self, query: ReportQuery) -> list[dict[str, Any]]:
        """Billing totals for `usage-pipeline report`."""
        return report_records(query, self.query_rows(report_sql(self.location.database, query)))

    def query_rows(self, sql: str) -> list[tuple]:
        """Run a read query and return its rows."""
        with self._lock:
            return list(self.client.query(sql).result_rows)

    # --- pricing: models without a price, provider-reported cost, repricing -----------------

    def missing_prices(self, scope: EventScope) -> list[dict[str, Any]]:
        """Models seen without a full price (`usage-pipeline prices missing`)."""
        rows = self.query_rows(missing_prices_sql(self.location.database, scope))
        return pricing_records(MISSING_PRICE_COLUMNS, rows)

    def provider_costs(self, scope: EventScope) -> list[dict[str, Any]]:
        """Our cost beside the provider-reported one (`usage-pipeline prices compare`)."""
        rows = self.query_rows(provider_cost_sql(self.location.database, scope))
        return pricing_records(PROVIDER_COST_COLUMNS, rows)

    def reprice(
        self,
        scope: EventScope,
        pricer: UsagePricer,
        *,
        dry_run: bool,
        page_size: int = 20_000,
        now: datetime | None = None,
    ) -> RepriceSummary:
        """Price the stored events in `scope` again; rewrite the rows that change and their windows.

        Idempotent: a row is re-inserted (with a newer `ingested_at`, so it replaces the
        stored copy) only when its pricing would change, and afterwards every project
        window of the scope whose totals differ from its events is recomputed. Not
        retried: a failure raises, and running the same command again finishes the job.
        """
        summary = RepriceSummary(dry_run=dry_run)
        ingested_at = now or datetime.now(timezone.utc)
        database = self.location.database
        key_at = (EVENT_COLUMNS.index("project_id"), EVENT_COLUMNS.index("event_id"))
        after: tuple[str, str] | None = None
        while True:
            rows = self.query_rows(reprice_page_sql(database, scope, after, page_size))
            changed, _ = reprice_rows(rows, pricer, ingested_at=ingested_at, summary=summary)
            if changed and not dry_run:
                with self._lock:
                    self.client.insert("usage_events", changed, column_names=list(EVENT_COLUMNS), database=database)
            if len(rows) < page_size:
                break
            after = (rows[-1][key_at[0]], rows[-1][key_at[1]])
        if dry_run:
            return summary
        stale = [
            (project_id, datetime.fromtimestamp(start, timezone.utc))
            for project_id, start in self.query_rows(stale_windows_sql(database, scope, self.window_seconds))
        ]
        for i in range(0, len(stale), 500):
            with self._lock:
                self.client.command(window_recompute_sql(database, stale[i : i + 500], self.window_seconds))
        summary.windows_recomputed = len(stale)
        if summary.changed or stale:
            log.info("repriced %d events, recomputed %d windows", summary.changed, len(stale))
        return summary


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:300] if text else type(exc).__name__
