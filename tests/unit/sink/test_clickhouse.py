"""`ClickHouseSink` without ClickHouse: URL parsing, migrations and the retry loop on a fake client."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from stream_app.core.decode import DecodedEvent, MessageOrigin, Rejection
from stream_app.core.pricing import PricedCost
from stream_app.core.counting import StoredCopy, copies_of
from stream_app.core.rows import EVENT_COLUMNS, REJECTION_COLUMNS, TOOL_COLUMNS, WINDOW_COLUMNS, build_chunk_rows
from stream_app.core.windows import Source
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
        if "store_info" in sql and not self.report_rows:
            return FakeResult([])
        return FakeResult(self.report_rows)

    def insert(self, table: str, data, *args, column_names=None, database=None, **kwargs):
        # clickhouse-connect quotes table and database itself when given separately.
        table = f"{database}.{table}" if database else table
        if not table.endswith("schema_migrations"):
            self._maybe_fail()
        self.log.append(("insert", table))
        self.inserted.append((table, list(data), list(column_names or [])))

    def insert_arrow(self, table: str, arrow_table, database=None, **kwargs):
        rows = [list(row.values()) for row in arrow_table.to_pylist()]
        self.insert(table, rows, column_names=arrow_table.column_names, database=database)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(clickhouse, "connect", lambda location: client)
    return client


def make_sink(**kwargs) -> ClickHouseSink:
    return ClickHouseSink(parse_clickhouse_url("chdb:///nowhere/ch"), window_seconds=60, **kwargs)


def price(event) -> PricedCost:
    return PricedCost(Decimal("0.5"), "priced", "test", "openai", event.model)


def chunk(n_events: int = 2, rejections: int = 0):
    ts = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)
    origin = MessageOrigin("llm.usage.events", 0, 1, b"proj-acme")
    decoded = [DecodedEvent(make_event(timestamp=ts, tool_calls=[{"name": "t"}]), origin, i) for i in range(n_events)]
    rejected = [Rejection("invalid_json", "x", origin, None, b"{") for _ in range(rejections)]
    return build_chunk_rows(copies_of(decoded), rejected, price=price, window_seconds=60, ingested_at=ts)


def test_open_on_a_migrated_store_applies_nothing_and_records_the_window_size(fake):
    fake.applied = MIGRATED
    sink = make_sink()

    sink.open()

    assert sink.migrate() == []
    assert fake.inserted == [("usage.store_info", [["window_seconds", "60"]], ["name", "value"])]
    assert not any("usage_events" in sql for kind, sql in fake.log if kind == "command")


def test_a_store_with_another_window_size_is_refused(fake):
    fake.applied = MIGRATED
    fake.report_rows = [("300",)]

    with pytest.raises(ConfigurationError, match="USAGE_WINDOW_SECONDS=60, but the store .* keeps 300 s windows"):
        make_sink().open()


def test_rejections_ttl_is_applied_at_open(fake):
    fake.applied = MIGRATED

    make_sink(rejections_ttl_days=7).open()

    assert ("command", "ALTER TABLE `usage`.usage_rejections MODIFY TTL toDateTime(rejected_at) + INTERVAL 7 DAY") in fake.log


def test_write_order_is_rejections_tools_events_then_window_cells(fake):
    fake.applied = MIGRATED
    sink = make_sink()
    sink.open()
    fake.log.clear()
    fake.inserted.clear()

    sink.write_rows(chunk(n_events=2, rejections=1))

    assert [kind for kind, _text in fake.log] == ["query", "insert", "insert", "insert", "insert"]
    assert [text for kind, text in fake.log if kind == "insert"] == [
        "usage.usage_rejections", "usage.usage_tool_windows", "usage.usage_events", "usage.usage_window_cells",
    ]
    # First, how far the stored cells cover (none here, so the chunk's sums go in whole): the
    # cells are folded while the events are written.
    assert "FROM `usage`.usage_window_cells WHERE (level, grouping, project_id, window_start) IN" in fake.log[0][1]
    columns = {table: cols for table, _rows, cols in fake.inserted}
    assert columns["usage.usage_events"] == list(EVENT_COLUMNS)
    assert columns["usage.usage_window_cells"] == list(WINDOW_COLUMNS)
    assert columns["usage.usage_tool_windows"] == list(TOOL_COLUMNS)
    assert columns["usage.usage_rejections"] == list(REJECTION_COLUMNS)
    assert (sink.stats.chunks_written, sink.stats.events_written, sink.stats.rejections_written) == (1, 2, 1)


def test_chunk_of_only_rejections_writes_no_window(fake):
    fake.applied = MIGRATED
    sink = make_sink()
    sink.open()
    fake.log.clear()

    sink.write_rows(chunk(n_events=0, rejections=2))

    assert fake.log == [("insert", "usage.usage_rejections")]


def test_empty_chunk_writes_nothing(fake):
    fake.applied = MIGRATED
    sink = make_sink()
    sink.open()
    fake.log.clear()

    sink.write_rows(chunk(n_events=0))

    assert fake.log == []


def test_a_failed_write_raises_for_the_caller_to_retry(fake):
    fake.applied = MIGRATED
    sink = make_sink()
    sink.open()
    fake.fail_writes = 1

    with pytest.raises(ConnectionError):
        sink.write_rows(chunk())
    assert sink.stats.chunks_written == 0


def test_report_maps_rows_to_records(fake):
    fake.applied = MIGRATED
    sink = make_sink()
    sink.open()
    fake.report_rows = [("proj-acme", 2, 10, 20, 0, 0, 0, Decimal("0.000000075000000000"), 0)]

    records = sink.report(ReportQuery("project"))

    assert records == [{
        "project_id": "proj-acme", "events": 2, "input_tokens": 10, "output_tokens": 20,
        "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
        "cost_usd": "0.000000075", "unpriced_events": 0,
    }]
    assert fake.log[-1] == ("query", clickhouse.report_sql("usage", ReportQuery("project"), 60))


def test_lookup_returns_stored_copies_by_key(fake):
    fake.applied = MIGRATED
    sink = make_sink()
    sink.open()
    fake.report_rows = [("p", "e1", "t", 3, 40, 2, 99)]

    found = sink.lookup({"p": ["e1", "e2"]})

    assert found == {("p", "e1"): StoredCopy(Source("t", 3, 40), 2, 99)}


def test_closed_sink_refuses_to_work(fake):
    fake.applied = MIGRATED
    sink = make_sink()
    sink.open()
    sink.close()

    assert fake.closed
    with pytest.raises(SinkError, match="not open"):
        sink.query_rows("SELECT 1")
    sink.close()  # closing twice is harmless


def test_context_manager_closes(fake):
    fake.applied = MIGRATED

    with make_sink() as opened:
        assert isinstance(opened, ClickHouseSink)

    assert fake.closed


def test_unreachable_store_is_a_sink_error_with_a_hint(monkeypatch, tmp_path):
    import clickhouse_connect

    def refuse(**kwargs):
        raise RuntimeError("directory is locked")

    monkeypatch.setattr(clickhouse_connect, "get_client", refuse)

    with pytest.raises(SinkError, match="cannot open ClickHouse at chdb://.*directory is locked.*one process at a time"):
        clickhouse.connect(parse_clickhouse_url(f"chdb://{tmp_path}/ch"))


def test_fault_plan_fails_chunk_writes_not_the_opening(fake):
    from stream_app.sink.faults import FaultPlan

    fake.applied = MIGRATED
    sink = make_sink(fault_plan=FaultPlan(fail_inserts=1))

    sink.open()

    with pytest.raises(ConnectionError):
        sink.write_rows(chunk())
    sink.write_rows(chunk())
