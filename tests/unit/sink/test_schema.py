"""The ClickHouse schema and the window rewrite, as exact strings built by pure functions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from stream_app.core.rows import EVENT_COLUMNS, REJECTION_COLUMNS
from stream_app.sink.schema import (
    MIGRATIONS_TABLE,
    Migration,
    bootstrap_statements,
    migrations,
    pending_migrations,
    quote_identifier,
    quote_string,
    window_recompute_sql,
)

# 2026-11-22T12:00:00Z = 1_795_348_800 s after the epoch (2026-01-01 = 1_767_225_600, + 325 days + 12 h).
NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NOON_EPOCH = 1_795_348_800


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "'plain'"),
        ("o'brien", "'o\\'brien'"),
        ("back\\slash", "'back\\\\slash'"),
        ("\\'", "'\\\\\\''"),
        ("", "''"),
    ],
)
def test_quote_string(value, literal):
    assert quote_string(value) == literal


@pytest.mark.parametrize(
    ("name", "identifier"),
    [("usage", "`usage`"), ("my`db", "`my\\`db`"), ("a\\b", "`a\\\\b`"), ("usage-test", "`usage-test`")],
)
def test_quote_identifier(name, identifier):
    assert quote_identifier(name) == identifier


def test_window_recompute_sql_exact():
    windows = [
        ("proj-b", NOON + timedelta(minutes=1)),
        ("proj-a", NOON),
        ("proj-b", NOON + timedelta(minutes=1)),  # duplicate pair: listed once
        ("o'x", NOON),
    ]

    sql = window_recompute_sql("usage", windows, 60)

    assert sql == """INSERT INTO `usage`.usage_windows
SELECT
    g.1 AS grouping,
    ev_project AS project_id,
    g.2 AS agent_name,
    g.3 AS session_id,
    ev_window AS window_start,
    60 AS window_seconds,
    count() AS events,
    sum(ev_input) AS input_tokens,
    sum(ev_output) AS output_tokens,
    sum(ev_cache_read) AS cache_read_tokens,
    sum(ev_cache_write) AS cache_write_tokens,
    sum(ev_reasoning) AS reasoning_tokens,
    sum(ev_cost) AS cost_usd,
    countIf(ev_status != 'priced') AS unpriced_events,
    now64(9) AS version
FROM (
    SELECT
        project_id AS ev_project,
        agent_name AS ev_agent,
        session_id AS ev_session,
        window_start AS ev_window,
        input_tokens AS ev_input,
        output_tokens AS ev_output,
        cache_read_tokens AS ev_cache_read,
        cache_write_tokens AS ev_cache_write,
        reasoning_tokens AS ev_reasoning,
        cost_usd AS ev_cost,
        price_status AS ev_status
    FROM `usage`.usage_events FINAL
    WHERE (project_id, toUInt32(window_start)) IN (('o\\'x', 1795348800), ('proj-a', 1795348800), ('proj-b', 1795348860))
)
ARRAY JOIN [('project', '', ''), ('agent', ev_agent, ''), ('session', '', ev_session)] AS g
WHERE NOT (g.1 = 'session' AND g.3 = '')
GROUP BY grouping, project_id, agent_name, session_id, window_start"""


def test_window_recompute_pairs_are_sorted_and_deduplicated():
    later = NOON + timedelta(minutes=5)
    sql = window_recompute_sql("usage", {("b", later), ("a", later), ("b", NOON)} | {("a", later)}, 300)

    (in_list,) = re.findall(r"IN \((.*)\)\n\)", sql)
    assert in_list == f"('a', {NOON_EPOCH + 300}), ('b', {NOON_EPOCH}), ('b', {NOON_EPOCH + 300})"
    assert "    300 AS window_seconds," in sql


def test_window_recompute_uses_the_instant_of_a_non_utc_start():
    start = datetime(2026, 11, 22, 13, 0, tzinfo=timezone(timedelta(hours=1)))

    assert f"(('p', {NOON_EPOCH}))" in window_recompute_sql("db", [("p", start)], 60)


def test_window_recompute_needs_at_least_one_window():
    with pytest.raises(ValueError, match="no windows"):
        window_recompute_sql("usage", [], 60)


# --- DDL ----------------------------------------------------------------------------------


def test_bootstrap_statements_exact():
    assert bootstrap_statements("usage") == (
        "CREATE DATABASE IF NOT EXISTS `usage`",
        """CREATE TABLE IF NOT EXISTS `usage`.schema_migrations (
    version UInt32,
    description String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version""",
    )
    assert MIGRATIONS_TABLE == "schema_migrations"


def _table_ddl(name: str) -> str:
    (ddl,) = [s for m in migrations("usage") for s in m.statements if f"`usage`.{name} (" in s]
    return ddl


def _ddl_columns(ddl: str) -> list[str]:
    body = ddl[ddl.index("(") + 1 : ddl.index("\n) ENGINE")]
    return [line.strip().split()[0] for line in body.strip().splitlines()]


def _columns_after_migrations(table: str) -> list[str]:
    """The table's columns once every migration ran: CREATE's, then each ADD COLUMN ... AFTER."""
    columns = _ddl_columns(_table_ddl(table))
    for migration in migrations("usage"):
        for statement in migration.statements:
            match = re.match(
                rf"ALTER TABLE `usage`\.{table} ADD COLUMN IF NOT EXISTS (\w+) .* AFTER (\w+)$", statement
            )
            if match:
                columns.insert(columns.index(match.group(2)) + 1, match.group(1))
    return columns


def test_usage_events_columns_are_the_row_columns_in_order():
    assert _columns_after_migrations("usage_events") == list(EVENT_COLUMNS)


def test_migration_2_adds_the_price_detail_without_touching_migration_1():
    (migration,) = [m for m in migrations("usage") if m.version == 2]

    assert migration.statements == (
        "ALTER TABLE `usage`.usage_events ADD COLUMN IF NOT EXISTS "
        "price_detail LowCardinality(String) DEFAULT '' AFTER catalog_model",
    )
    assert "price_detail" not in _table_ddl("usage_events")


def test_usage_rejections_columns_are_the_rejection_row_columns_in_order():
    assert _ddl_columns(_table_ddl("usage_rejections")) == list(REJECTION_COLUMNS)


def test_usage_events_replace_by_project_and_event_id_across_all_time():
    ddl = _table_ddl("usage_events")

    assert ddl.endswith("ENGINE = ReplacingMergeTree(ingested_at)\nORDER BY (project_id, event_id)")
    # Replacement happens only within a partition: a time partition would let a re-sent
    # event escape its first copy.
    assert "PARTITION BY" not in ddl


def test_usage_windows_replace_by_version():
    ddl = _table_ddl("usage_windows")

    assert ddl.endswith(
        "ENGINE = ReplacingMergeTree(version)\nORDER BY (project_id, grouping, agent_name, session_id, window_start)"
    )
    assert "PARTITION BY" not in ddl


def test_money_is_decimal_never_float():
    for name in ("usage_events", "usage_windows"):
        ddl = _table_ddl(name)
        assert "    cost_usd Decimal(38, 18)," in ddl
        assert "Float32" not in ddl
    assert "    provider_cost_usd Nullable(Decimal(38, 18))," in _table_ddl("usage_events")


def test_every_migration_statement_is_idempotent():
    for migration in migrations("usage"):
        for statement in migration.statements:
            assert statement.startswith(
                ("CREATE TABLE IF NOT EXISTS `usage`.", "ALTER TABLE `usage`.usage_events ADD COLUMN IF NOT EXISTS ")
            ), statement[:60]


def test_migration_versions_are_unique_and_ascending():
    versions = [m.version for m in migrations("usage")]

    assert versions == sorted(set(versions))
    assert versions[0] == 1


def test_migrations_use_the_given_database():
    for migration in migrations("billing"):
        for statement in migration.statements:
            assert "`billing`." in statement
            assert "`usage`." not in statement


# --- pending migrations ---------------------------------------------------------------------


def _m(version: int) -> Migration:
    return Migration(version, f"m{version}", (f"SELECT {version}",))


def test_pending_migrations_oldest_first():
    assert [m.version for m in pending_migrations([_m(3), _m(1), _m(2)], [])] == [1, 2, 3]


def test_pending_migrations_skip_applied():
    assert [m.version for m in pending_migrations([_m(3), _m(1), _m(2)], [1, 3])] == [2]


def test_nothing_pending_when_all_applied():
    assert pending_migrations([_m(1), _m(2)], [2, 1, 1]) == []


def test_unknown_applied_versions_are_ignored():
    assert [m.version for m in pending_migrations([_m(1), _m(2)], [7])] == [1, 2]
