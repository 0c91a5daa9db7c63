"""The ClickHouse sink: open the store, migrate it, look keys up, write a chunk's rows.

The same code talks to the embedded engine (`chdb:///dir`) and a server (`http://…`)
through clickhouse-connect. `write_rows` is one attempt; the worker's chunk processor
retries the whole look-up-decide-write step (stream_app/worker/chunk.py), because a
retry must look again at what a failed attempt may have written.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from datetime import datetime, timezone
from typing import Any

from stream_app.core.counting import EventKey, StoredCopy, content_from_stored
from stream_app.core.repricing import RepriceSummary, UsagePricer, reprice_rows
from stream_app.core.rows import EVENT_COLUMNS, ChunkRows, same_message
from stream_app.core.window_cells import CellKey, StoredCell, fold
from stream_app.core.windows import Source
from stream_app.errors import ConfigurationError, SinkError
from stream_app.sink.arrow_rows import CHUNK_TABLES
from stream_app.sink.faults import FaultPlan, FaultyClient
from stream_app.sink.location import (  # noqa: F401 - re-exported: the sink's public names
    DEFAULT_DATABASE,
    ClickHouseClient,
    ClickHouseLocation,
    connect,
    parse_clickhouse_url,
    redact_url_password,
)
from stream_app.sink.cell_rebuild import rebuild_days, stale_days_sql
from stream_app.sink.key_tables import TABLE_LOOKUP_FROM, KeyTables
from stream_app.sink.sliced_insert import SlicedInserter
from stream_app.sink.lookups import (
    STORED_CONTENT_COLUMNS,
    lookup_statements,
    stored_cell_statements,
    stored_content_statements,
)
from stream_app.sink.queries import (
    report_json_sql,
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
    scope_conditions,
)
from stream_app.sink.schema import (
    MIGRATIONS_TABLE,
    STORE_INFO_TABLE,
    bootstrap_statements,
    current_schema_statements,
    migrations,
    pending_migrations,
    quote_identifier,
    quote_string,
    rejections_ttl_sql,
)

log = logging.getLogger(__name__)

@dataclass
class SinkStats:
    """Counters a person would alert on."""

    chunks_written: int = 0
    events_written: int = 0
    rejections_written: int = 0
    write_failures: int = 0
    retrying_since: float | None = None


# Inserts that may span many month partitions (a backfill of years) must not be refused.
_ANY_PARTITIONS = {"max_partitions_per_insert_block": 0}


class ClickHouseSink:
    """Looks up billed keys, writes a chunk's rows in a crash-safe order; answers billing queries."""

    def __init__(
        self,
        location: ClickHouseLocation,
        *,
        window_seconds: int,
        rejections_ttl_days: int | None = None,
        fault_plan: FaultPlan | None = None,
    ) -> None:
        self.location = location
        self.window_seconds = window_seconds
        self.rejections_ttl_days = rejections_ttl_days
        self.fault_plan = fault_plan or FaultPlan()
        self.stats = SinkStats()
        self._client: ClickHouseClient | None = None
        self._keys: KeyTables | None = None
        self._sliced = SlicedInserter()
        # chDB is one in-process engine: writes and the worker's report page share it.
        self._lock = threading.Lock()

    @property
    def db(self) -> str:
        return quote_identifier(self.location.database)

    def open(self) -> ClickHouseSink:
        """Connect and bring the schema up to date (idempotent)."""
        self._client = connect(self.location)
        self.migrate()
        self._agree_on_window_size()
        if self.rejections_ttl_days:
            self.client.command(rejections_ttl_sql(self.location.database, self.rejections_ttl_days))
        self._keys = KeyTables(self._client, self.location.database)
        self._keys.create()
        if self.fault_plan.active:
            # Faults are for chunk writes; start-up must not be the thing that fails.
            self._client = FaultyClient(self._client, self.fault_plan)
            self._keys.client = self._client
        return self

    def close(self) -> None:
        if self._client is not None:
            try:
                if self._keys is not None:
                    with self._lock:
                        self._keys.drop()
            except Exception as exc:  # noqa: BLE001 - closing after an outage: the tables are empty anyway
                log.debug("could not drop the look-up tables: %s", _one_line(exc))
            self._client.close()
            self._client = None
            self._keys = None
        self._sliced.close()
        self._sliced = SlicedInserter()  # a closed sink may be opened again

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
            pending = pending_migrations(migrations(self.location.database), applied)
            if pending and not applied and not self._has_events_table():
                # A new store: create the current layout at once. Nothing to upgrade, and
                # several workers starting together only run idempotent CREATEs.
                for statement in current_schema_statements(self.location.database):
                    self.client.command(statement)
            else:
                for migration in pending:
                    for statement in migration.statements:
                        self.client.command(statement)
                    if migration.apply is not None:
                        migration.apply(self.client, self.location.database, self.window_seconds)
                    log.info("applied ClickHouse migration %d: %s", migration.version, migration.description)
            if pending:
                self.client.insert(
                    MIGRATIONS_TABLE,
                    [[m.version, m.description] for m in pending],
                    column_names=["version", "description"],
                    database=self.location.database,
                )
            return [m.version for m in pending]

    def _has_events_table(self) -> bool:
        rows = self.client.query(
            f"SELECT count() FROM system.tables WHERE database = {quote_string(self.location.database)} "
            "AND name = 'usage_events'"
        ).result_rows
        return bool(rows and rows[0][0])

    def _agree_on_window_size(self) -> None:
        """Every writer of a store must use one window size, or a replay would count twice."""
        with self._lock:
            rows = self.client.query(
                f"SELECT value FROM {self.db}.{STORE_INFO_TABLE} FINAL WHERE name = 'window_seconds'"
            ).result_rows
            if not rows:
                self.client.insert(
                    STORE_INFO_TABLE, [["window_seconds", str(self.window_seconds)]],
                    column_names=["name", "value"], database=self.location.database,
                )
            elif int(rows[0][0]) != self.window_seconds:
                raise ConfigurationError(
                    f"USAGE_WINDOW_SECONDS={self.window_seconds}, but the store at {self.location.display} "
                    f"keeps {rows[0][0]} s windows; set USAGE_WINDOW_SECONDS={rows[0][0]} (or use a new store)"
                )

    def answers(self) -> bool:
        """Whether ClickHouse answers at all (tells an outage from a chunk it refuses)."""
        try:
            with self._lock:
                self.client.query("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - any failure means "does not answer"
            return False

    def lookup(self, ids_by_project: dict[str, list[str]]) -> dict[EventKey, StoredCopy]:
        """The billed copy of each key that has one, by key (no FINAL, no history scan)."""
        found: dict[EventKey, StoredCopy] = {}
        if sum(len(ids) for ids in ids_by_project.values()) >= TABLE_LOOKUP_FROM and self._keys is not None:
            keys = [(project_id, event_id) for project_id, ids in ids_by_project.items() for event_id in ids]
            with self._lock:
                rows = self._keys.stored_events(keys)
        else:
            rows = [row for sql in lookup_statements(self.location.database, ids_by_project) for row in self.query_rows(sql)]
        for project_id, event_id, topic, partition, offset, index, print_ in rows:
            found[(project_id, event_id)] = StoredCopy(Source(topic, int(partition), int(offset)), int(index), int(print_))
        return found

    def lookup_soon(self, ids_by_project: dict[str, list[str]]) -> Future:
        """`lookup` on the writer thread (ClickHouse works while the caller prices the chunk).

        The caller must wait for the result before it writes: a write takes the lock the
        look-up needs, and then waits for the writer thread.
        """
        return self._sliced.submit(self.lookup, ids_by_project)

    def stored_contents(self, keys: list[EventKey]) -> dict[EventKey, tuple]:
        """The compared content of billed copies (only for copies that may conflict)."""
        by_project: dict[str, list[str]] = {}
        for project_id, event_id in keys:
            by_project.setdefault(project_id, []).append(event_id)
        out: dict[EventKey, tuple] = {}
        for sql in stored_content_statements(self.location.database, by_project):
            for row in self.query_rows(sql):
                values = dict(zip(STORED_CONTENT_COLUMNS, row, strict=True))
                out[(values["project_id"], values["event_id"])] = content_from_stored(values)
        return out

    def write_rows(self, rows: ChunkRows) -> None:
        """One attempt at writing a chunk: dead letters, tool rows, billed events, then window cells.

        Every row is keyed by its source (events by their key and source message, cells
        by their partition and coverage), so a crash between any two of these inserts is
        repaired by the replay: the next attempt finds the same billed copies, rewrites
        the same keys, and adds to a cell only the messages it does not cover yet. Events
        go before cells, so the stored events of a partition are always a prefix of its
        messages, from which a cell can be rebuilt (`reprice`, repairs).
        """
        with self._lock:
            # On the writer thread, in this order, while the first events slice is built: how
            # far the stored cells cover (read before anything of this chunk is written), then
            # the small tables. The cells are folded and built while the events are written.
            before: list[Callable[[], object]] = []
            if rows.window_parts:
                before.append(partial(self._stored_cells, list(rows.window_parts)))
            for table, table_rows in (("usage_rejections", rows.rejection_rows), ("usage_tool_windows", rows.tool_rows)):
                if table_rows:
                    before.append(partial(self._writer(table), CHUNK_TABLES[table].table(table_rows)))

            def cells_table(done: list[Any]) -> Any:
                if not rows.window_parts:
                    return None
                rows.window_rows = fold(rows.window_parts, done[0])
                return CHUNK_TABLES["usage_window_cells"].table(rows.window_rows) if rows.window_rows else None

            cells = self._sliced.insert(
                CHUNK_TABLES["usage_events"], rows.event_rows, self._writer("usage_events"), cells_table, same_message, before
            )
            if cells is not None:
                self._writer("usage_window_cells")(cells)
        self.stats.chunks_written += 1
        self.stats.events_written += rows.events
        self.stats.rejections_written += len(rows.rejection_rows)

    def _writer(self, table: str) -> Callable[[Any], object]:
        """Inserts one Arrow table into `table` (caller holds the lock)."""
        client, database = self.client, self.location.database
        return lambda data: client.insert_arrow(table, data, database=database, settings=_ANY_PARTITIONS)

    def _stored_cells(self, keys: list[CellKey]) -> dict[CellKey, StoredCell]:
        """The winning stored row of each cell that has one (caller holds the lock)."""
        if len(keys) >= TABLE_LOOKUP_FROM and self._keys is not None:
            return self._keys.stored_cells(keys)
        wanted = set(keys)
        best: dict[CellKey, tuple] = {}
        n = len(CellKey._fields)
        rows = [row for sql in stored_cell_statements(self.location.database, keys) for row in self.client.query(sql).result_rows]
        for row in rows:
            key = CellKey(*row[:7], _utc(row[7]), row[8], int(row[9]))
            if key in wanted and (key not in best or row[-1] >= best[key][-1]):
                best[key] = row
        return {key: StoredCell(int(row[n]), int(row[n + 1]), tuple(row[n + 2 : -1])) for key, row in best.items()}

    def report(self, query: ReportQuery) -> list[dict[str, Any]]:
        """Billing totals for `usage-pipeline report`, from the window rows."""
        return report_records(query, self.query_rows(report_sql(self.location.database, query, self.window_seconds)))

    def report_json(self, query: ReportQuery) -> bytes:
        """The same records as `report`, as the JSON array ClickHouse writes (the worker's `/report`)."""
        sql = report_json_sql(self.location.database, query, self.window_seconds)
        with self._lock:
            return self.client.raw_query(sql, fmt="JSONEachRow")

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

        The run takes the next price generation: changed events are re-inserted with it,
        so they replace their stored copy whatever any clock says, and a worker replaying
        an old message (generation 0) cannot bring the old price back. Then every message
        whose events are newer than its window rows gets its windows rebuilt from its
        events, with the same generation; that also finishes a run that stopped between
        the two steps. Not retried: a failure raises, and running it again finishes the job.
        """
        summary = RepriceSummary(dry_run=dry_run)
        database = self.location.database
        generation = int(self.query_rows(f"SELECT max(price_generation) FROM {self.db}.usage_events")[0][0] or 0) + 1
        key_at = (EVENT_COLUMNS.index("project_id"), EVENT_COLUMNS.index("event_id"))
        after: tuple[str, str] | None = None
        while True:
            rows = self.query_rows(reprice_page_sql(database, scope, after, page_size))
            changed = reprice_rows(rows, pricer, generation=generation, summary=summary)
            if changed and not dry_run:
                with self._lock:
                    self.client.insert("usage_events", changed, column_names=list(EVENT_COLUMNS), database=database)
            if len(rows) < page_size:
                break
            after = (rows[-1][key_at[0]], rows[-1][key_at[1]])
        if dry_run:
            return summary
        summary.windows_recomputed = self.rebuild_stale_windows(scope)
        if summary.changed or summary.windows_recomputed:
            log.info(
                "repriced %d events (generation %d), rebuilt the window cells of %d days",
                summary.changed, generation, summary.windows_recomputed,
            )
        return summary

    def rebuild_stale_windows(self, scope: EventScope, passes: int = 3) -> int:
        """Rebuild the cells of days whose events were repriced after them; returns how many days.

        Looks again after each pass: a worker folding a cell it read just before a
        rebuild writes the old prices back with more coverage, and the day shows stale.
        """
        database = self.location.database
        where = " AND ".join(scope_conditions(scope))
        rebuilt = 0
        for _ in range(passes):
            stale = [(p, d, int(n)) for p, d, n in self.query_rows(stale_days_sql(database, where))]
            if not stale:
                break
            with self._lock:
                rebuilt += rebuild_days(self.client, database, self.window_seconds, stale)
        else:
            log.warning("window cells of repriced events are still being rewritten by a worker; run reprice again")
        return rebuilt

    def rebuild_cells_of_days(self, days: list[tuple[str, Any]]) -> int:
        """Rebuild every cell of these (project_id, day) from the stored events (a repair)."""
        with self._lock:
            return rebuild_days(self.client, self.location.database, self.window_seconds, [(p, d, 0) for p, d in days])


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:300] if text else type(exc).__name__
