"""The ClickHouse schema, as exact strings built by pure functions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from stream_app.core.rows import EVENT_COLUMNS, REJECTION_COLUMNS, TOOL_COLUMNS, WINDOW_COLUMNS
from stream_app.sink.schema import (
    MIGRATIONS_TABLE,
    Migration,
    bootstrap_statements,
    events_table_sql,
    migrations,
    pending_migrations,
    quote_identifier,
    quote_string,
    rejections_ttl_sql,
    tool_windows_table_sql,
    window_cells_table_sql,
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


def test_first_release_usage_events_columns_match_what_the_upgrade_copies():
    # Migration 3 copies every column of the first release by name; the three new ones get constants.
    old = _columns_after_migrations("usage_events")
    assert old == [c for c in EVENT_COLUMNS if c not in ("batch_index", "fingerprint", "price_generation")]


def test_migration_2_adds_the_price_detail_without_touching_migration_1():
    (migration,) = [m for m in migrations("usage") if m.version == 2]

    assert migration.statements == (
        "ALTER TABLE `usage`.usage_events ADD COLUMN IF NOT EXISTS "
        "price_detail LowCardinality(String) DEFAULT '' AFTER catalog_model",
    )
    assert "price_detail" not in _table_ddl("usage_events")


@pytest.mark.parametrize("version", [3, 4])
def test_migrations_3_and_4_move_data_in_code(version):
    (migration,) = [m for m in migrations("usage") if m.version == version]

    assert migration.statements == () and migration.apply is not None


def test_usage_rejections_columns_are_the_rejection_row_columns_in_order():
    assert _ddl_columns(_table_ddl("usage_rejections")) == list(REJECTION_COLUMNS)


def test_current_tables_have_the_row_columns_in_order():
    assert _ddl_columns(events_table_sql("usage")) == list(EVENT_COLUMNS)
    assert _ddl_columns(window_cells_table_sql("usage")) == list(WINDOW_COLUMNS)
    assert _ddl_columns(tool_windows_table_sql("usage")) == list(TOOL_COLUMNS)


def test_events_are_keyed_by_project_and_event_id_and_versioned_by_price_generation():
    ddl = events_table_sql("usage")

    assert ddl.endswith(
        "ENGINE = ReplacingMergeTree(price_generation)\nORDER BY (project_id, event_id)\nSETTINGS index_granularity = 1024"
    )
    # Look-ups by key must meet every stored copy: no time partition.
    assert "PARTITION BY" not in ddl


def test_window_cells_are_keyed_by_level_window_and_source_partition_within_a_month():
    # (level, grouping, project, window_start) first: a range of one project's cells is one key range.
    assert window_cells_table_sql("usage").endswith(
        "ENGINE = ReplacingMergeTree(version)\nPARTITION BY toYYYYMM(window_start)\n"
        "ORDER BY (level, grouping, project_id, window_start, agent_name, session_id, provider, model, src_topic, src_partition)"
    )
    assert tool_windows_table_sql("usage").endswith(
        "ENGINE = ReplacingMergeTree(version)\nPARTITION BY toYYYYMM(window_start)\n"
        "ORDER BY (project_id, window_start, agent_name, tool_name, src_topic, src_partition, src_offset)"
    )


def test_money_is_decimal_never_float():
    for ddl in (events_table_sql("usage"), window_cells_table_sql("usage")):
        assert "    cost_usd Decimal(38, 18)," in ddl
        assert "Float32" not in ddl
    assert "    provider_cost_usd Nullable(Decimal(38, 18))," in events_table_sql("usage")


def test_rejections_ttl():
    assert rejections_ttl_sql("usage", 30) == (
        "ALTER TABLE `usage`.usage_rejections MODIFY TTL toDateTime(rejected_at) + INTERVAL 30 DAY"
    )


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
