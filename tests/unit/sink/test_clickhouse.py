"""`ClickHouseSink` without ClickHouse: URL parsing, migrations and the retry loop on a fake client."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from stream_app.core.decode import DecodedEvent, MessageOrigin, Rejection
from stream_app.core.pricing import PricedCost
from stream_app.core.rows import EVENT_COLUMNS, REJECTION_COLUMNS, build_chunk_rows
from stream_app.errors import ConfigurationError, SinkError
from stream_app.sink import clickhouse
from stream_app.sink.clickhouse import ClickHouseLocation, ClickHouseSink, parse_clickhouse_url
from stream_app.sink.queries import ReportQuery
from stream_app.sink.schema import migrations

# Every migration version: a store that is up to date.
MIGRATED = [m.version for m in migrations("usage")]
from tests.factories import make_event

# --- CLICKHOUSE_URL ----------------------------------------------------------------------


def test_chdb_url():
    location = parse_clickhouse_url("chdb:///var/lib/usage/clickhouse")

    assert location == ClickHouseLocation("chdb", "usage", path=Path("/var/lib/usage/clickhouse"))
    assert location.display == "chdb:///var/lib/usage/clickhouse (database usage)"


def test_chdb_url_with_database_and_escaped_path():
    location = parse_clickhouse_url("chdb:///tmp/my%20store?database=billing")

    assert (location.path, location.database) == (Path("/tmp/my store"), "billing")


@pytest.mark.parametrize("url", ["chdb://relative/dir", "chdb://"])
def test_chdb_url_needs_an_absolute_directory(url):
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_URL=.*absolute directory"):
        parse_clickhouse_url(url)


def test_http_url():
    location = parse_clickhouse_url("http://alice:s%40cret@ch.internal:9123/billing")

    assert location == ClickHouseLocation(
        "http", "billing", host="ch.internal", port=9123, username="alice", password=SecretStr("s@cret"), secure=False
    )
    assert location.display == "http://alice@ch.internal:9123/billing"
    assert "s@cret" not in location.display
    assert "s@cret" not in repr(location)


def test_https_url_defaults():
    location = parse_clickhouse_url("https://ch.example.com")

    assert (location.port, location.secure, location.database, location.username, location.password) == (
        8443, True, "usage", "default", SecretStr("")
    )


def test_http_url_default_port():
    assert parse_clickhouse_url("http://h/").port == 8123


@pytest.mark.parametrize("url", ["http:///db", "ftp://h/db", "clickhouse://h:9000/db", "/just/a/path"])
def test_bad_urls_name_the_setting(url):
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_URL="):
        parse_clickhouse_url(url)


# --- the sink on a fake client --------------------------------------------------------------


class FakeResult:
    def __init__(self, rows: list[tuple]) -> None:
        self.result_rows = rows


class FakeClient:
    """Records every statement; fails the next `fail_writes` inserts/commands after migration."""

    def __init__(self, applied: list[int] | None = None, report_rows: list[tuple] | None = None) -> None:
        self.applied = applied or []
        self.report_rows = report_rows or []
        self.log: list[tuple[str, str]] = []
        self.inserted: list[tuple[str, list, list]] = []
        self.fail_writes = 0
        self.closed = False

    def _maybe_fail(self) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise ConnectionError("connection refused")

    def command(self, cmd: str, *args, **kwargs):
        if cmd.startswith("INSERT"):
            self._maybe_fail()
        self.log.append(("command", cmd))

    def query(self, sql: str, *args, **kwargs):
        self.log.append(("query", sql))
        if "schema_migrations" in sql:
            return FakeResult([(v,) for v in self.applied])
        return FakeResult(self.report_rows)

    def insert(self, table: str, data, *args, column_names=None, database=None, **kwargs):
        # clickhouse-connect quotes table and database itself when given separately.
        table = f"{database}.{table}" if database else table
        if not table.endswith("schema_migrations"):
            self._maybe_fail()
        self.log.append(("insert", table))
        self.inserted.append((table, list(data), list(column_names or [])))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(clickhouse, "connect", lambda location: client)
    return client


def make_sink(**kwargs) -> tuple[ClickHouseSink, list[float]]:
    slept: list[float] = []
    kwargs.setdefault("sleep", slept.append)
    sink = ClickHouseSink(parse_clickhouse_url("chdb:///nowhere/ch"), window_seconds=60, **kwargs)
    return sink, slept


def price(event) -> PricedCost:
    return PricedCost(Decimal("0.5"), "priced", "test", "openai", event.model)


def chunk(n_events: int = 2, rejections: int = 0):
    ts = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)
    origin = MessageOrigin("llm.usage.events", 0, 1, b"proj-acme")
    decoded = [DecodedEvent(make_event(timestamp=ts), origin, i) for i in range(n_events)]
    rejected = [Rejection("invalid_json", "x", origin, None, b"{") for _ in range(rejections)]
    return build_chunk_rows(decoded, rejected, price=price, window_seconds=60, ingested_at=ts)


def test_open_on_a_fresh_store_creates_everything_and_records_the_migration(fake):
    sink, _ = make_sink()

    sink.open()

    statements = [sql for kind, sql in fake.log if kind == "command"]
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `usage`"
    assert statements[1].startswith("CREATE TABLE IF NOT EXISTS `usage`.schema_migrations")
    assert [s.split(" (")[0] for s in statements[2:]] == [
        "CREATE TABLE IF NOT EXISTS `usage`.usage_events",
        "CREATE TABLE IF NOT EXISTS `usage`.usage_windows",
        "CREATE TABLE IF NOT EXISTS `usage`.usage_rejections",
        "ALTER TABLE `usage`.usage_events ADD COLUMN IF NOT EXISTS price_detail LowCardinality(String) DEFAULT '' AFTER catalog_model",
    ]
    assert fake.inserted == [
        ("usage.schema_migrations", [[1, "events, windows and rejections"]], ["version", "description"]),
        ("usage.schema_migrations", [[2, "price detail on events"]], ["version", "description"]),
    ]


def test_a_store_at_migration_1_gets_only_the_later_migrations(fake):
    fake.applied = [1]
    sink, _ = make_sink()

    sink.open()

    commands = [sql for kind, sql in fake.log if kind == "command"]
    assert not any(sql.startswith("CREATE TABLE IF NOT EXISTS `usage`.usage_events") for sql in commands)
    assert commands[-1].startswith("ALTER TABLE `usage`.usage_events ADD COLUMN IF NOT EXISTS price_detail")
    assert fake.inserted == [("usage.schema_migrations", [[2, "price detail on events"]], ["version", "description"])]


def test_open_on_a_migrated_store_applies_nothing(fake):
    fake.applied = MIGRATED
    sink, _ = make_sink()

    sink.open()

    assert sink.migrate() == []
    assert fake.inserted == []
    assert not any("usage_events" in sql for kind, sql in fake.log if kind == "command")


def test_write_order_is_events_then_windows_then_rejections(fake):
    fake.applied = MIGRATED
    sink, slept = make_sink()
    sink.open()
    fake.log.clear()
    rows = chunk(n_events=2, rejections=1)

    assert sink.write_chunk(rows) == 1

    assert [(kind, text.split("\n")[0]) for kind, text in fake.log] == [
        ("insert", "usage.usage_events"),
        ("command", "INSERT INTO `usage`.usage_windows"),
        ("insert", "usage.usage_rejections"),
    ]
    events_insert, rejections_insert = fake.inserted
    assert events_insert[2] == list(EVENT_COLUMNS)
    assert len(events_insert[1]) == 2
    assert rejections_insert[2] == list(REJECTION_COLUMNS)
    assert slept == []
    assert (sink.stats.chunks_written, sink.stats.events_written, sink.stats.rejections_written) == (1, 2, 1)


def test_chunk_of_only_rejections_recomputes_no_window(fake):
    fake.applied = MIGRATED
    sink, _ = make_sink()
    sink.open()
    fake.log.clear()

    sink.write_chunk(chunk(n_events=0, rejections=2))

    assert [(kind, text) for kind, text in fake.log] == [("insert", "usage.usage_rejections")]


def test_empty_chunk_writes_nothing(fake):
    fake.applied = MIGRATED
    sink, _ = make_sink()
    sink.open()
    fake.log.clear()

    assert sink.write_chunk(chunk(n_events=0)) == 1
    assert fake.log == []


def test_failed_writes_are_retried_with_doubling_backoff_until_they_succeed(fake):
    fake.applied = MIGRATED
    sink, slept = make_sink(retry_initial_seconds=0.2, retry_max_seconds=10)
    sink.open()
    fake.fail_writes = 4

    attempts = sink.write_chunk(chunk())

    assert attempts == 5
    assert slept == [0.2, 0.4, 0.8, 1.6]
    assert sink.stats.write_failures == 4
    assert sink.stats.retrying_since is None
    assert sink.stats.chunks_written == 1


def test_backoff_is_capped(fake):
    fake.applied = MIGRATED
    sink, slept = make_sink(retry_initial_seconds=1, retry_max_seconds=3)
    sink.open()
    fake.fail_writes = 5

    assert sink.write_chunk(chunk()) == 6
    assert slept == [1, 2, 3, 3, 3]


def test_retrying_is_visible_while_it_lasts(fake):
    fake.applied = MIGRATED
    seen: list[float | None] = []
    sink, _ = make_sink(sleep=lambda seconds: seen.append(sink.stats.retrying_since))
    sink.open()
    fake.fail_writes = 2

    sink.write_chunk(chunk())

    assert len(seen) == 2 and all(isinstance(t, float) for t in seen)
    assert seen[0] == seen[1]  # since the first failure, not the latest
    assert sink.stats.retrying_since is None


def test_report_maps_rows_to_records(fake):
    fake.applied = MIGRATED
    fake.report_rows = [("proj-acme", 2, 10, 20, 0, 0, 0, Decimal("0.000000075000000000"), 0)]
    sink, _ = make_sink()
    sink.open()

    records = sink.report(ReportQuery("project"))

    assert records == [{
        "project_id": "proj-acme", "events": 2, "input_tokens": 10, "output_tokens": 20,
        "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
        "cost_usd": "0.000000075", "unpriced_events": 0,
    }]
    assert fake.log[-1] == ("query", clickhouse.report_sql("usage", ReportQuery("project")))


def test_closed_sink_refuses_to_work(fake):
    sink, _ = make_sink()
    sink.open()
    sink.close()

    assert fake.closed
    with pytest.raises(SinkError, match="not open"):
        sink.query_rows("SELECT 1")
    sink.close()  # closing twice is harmless


def test_context_manager_closes(fake):
    fake.applied = MIGRATED
    sink, _ = make_sink()

    with sink as opened:
        assert opened is sink

    assert fake.closed


def test_unreachable_store_is_a_sink_error_with_a_hint(monkeypatch, tmp_path):
    import clickhouse_connect

    def refuse(**kwargs):
        raise RuntimeError("directory is locked")

    monkeypatch.setattr(clickhouse_connect, "get_client", refuse)

    with pytest.raises(SinkError, match="cannot open ClickHouse at chdb://.*directory is locked.*one process at a time"):
        clickhouse.connect(parse_clickhouse_url(f"chdb://{tmp_path}/ch"))


def test_fault_plan_on_a_fresh_store_fails_chunk_writes_not_the_migration(fake):
    from stream_app.sink.faults import FaultPlan

    sink, slept = make_sink(fault_plan=FaultPlan(fail_inserts=1))

    sink.open()

    assert sink.write_chunk(chunk()) == 2
    assert len(slept) == 1
