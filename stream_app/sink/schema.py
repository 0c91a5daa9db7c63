"""The ClickHouse schema, as numbered migrations built by pure functions.

One DDL for the embedded engine (chDB) and a real server (25.x+). The layout (README,
"How the store works") keeps every write proportional to the chunk and every billing
read proportional to the windows it asks for, whatever history is stored:

- `usage_events`: one row per billed event, ordered by (project_id, event_id): the
  idempotency index. A chunk looks its keys up (time-ordered UUIDv7 ids cluster at the
  end of the key range, so fresh traffic reads a few granules); nothing ever reads it
  with FINAL on the hot path. Versioned by `price_generation` (a reprice run's number),
  never by a wall clock.
- `usage_window_cells`: each window's running total per source partition, at three
  levels (the window, the hour, the day), with how far into the partition it covers
  (stream_app/core/window_cells.py). A chunk reads the cells it touches by key, adds the
  messages they do not cover yet and writes them after its events; billing reads whole
  days, whole hours and single windows (`FINAL` within a month partition), a few
  hundred rows whatever the range.
- `usage_tool_windows`: tool calls per (window, source message), durations kept whole for
  exact percentiles: a replay rewrites the same key.
- `usage_rejections`: every dead letter, kept for a configurable time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MIGRATIONS_TABLE = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]
    # A step that needs more than DDL (moving data); re-runnable after a crash.
    # Called as apply(client, database, window_seconds).
    apply: Callable[[Any, str, int], None] | None = None


def quote_identifier(name: str) -> str:
    """A backquoted ClickHouse identifier."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    """A single-quoted ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def migrations(database: str) -> tuple[Migration, ...]:
    """Every migration, oldest first; each statement is idempotent on its own."""
    db = quote_identifier(database)
    return (
        Migration(
            1,
            "events, windows and rejections",
            (
                f"""CREATE TABLE IF NOT EXISTS {db}.usage_events (
    event_id String,
    project_id LowCardinality(String),
    timestamp DateTime64(6, 'UTC'),
    window_start DateTime('UTC'),
    source LowCardinality(String),
    agent_name LowCardinality(String),
    session_id String,
    handoff_chain Array(String),
    operation LowCardinality(String),
    method LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    tool_call_count UInt32,
    tool_calls String,
    finish_reason LowCardinality(String),
    duration_ms Nullable(Float64),
    error Nullable(String),
    cost_usd Decimal(38, 18),
    price_status LowCardinality(String),
    price_source LowCardinality(String),
    catalog_provider LowCardinality(String),
    catalog_model LowCardinality(String),
    provider_cost_usd Nullable(Decimal(38, 18)),
    provider_metadata String,
    context String,
    kafka_topic LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset UInt64,
    ingested_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (project_id, event_id)""",
                f"""CREATE TABLE IF NOT EXISTS {db}.usage_windows (
    grouping LowCardinality(String),
    project_id LowCardinality(String),
    agent_name LowCardinality(String),
    session_id String,
    window_start DateTime('UTC'),
    window_seconds UInt32,
    events UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    cost_usd Decimal(38, 18),
    unpriced_events UInt64,
    version DateTime64(9, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, grouping, agent_name, session_id, window_start)""",
                rejections_table_sql(database),
            ),
        ),
        Migration(
            2,
            "price detail on events",
            (
                # Why a row is partial or unpriced, or how its model name was matched
                # (README, Pricing). A metadata-only change: existing rows read ''.
                f"ALTER TABLE {db}.usage_events ADD COLUMN IF NOT EXISTS "
                "price_detail LowCardinality(String) DEFAULT '' AFTER catalog_model",
            ),
        ),
        Migration(
            3,
            "windows per source message, events versioned by price generation",
            (),
            apply=_upgrade_to_message_windows,
        ),
        Migration(
            4,
            "window cells per source partition at window, hour and day levels",
            (),
            apply=_upgrade_to_window_cells,
        ),
    )


def _upgrade_to_message_windows(client: Any, database: str, window_seconds: int) -> None:
    # Imported here: the data move needs the core, plain DDL building does not.
    from stream_app.sink.upgrade import upgrade_to_message_windows

    upgrade_to_message_windows(client, database, window_seconds)


def _upgrade_to_window_cells(client: Any, database: str, window_seconds: int) -> None:
    from stream_app.sink.cell_rebuild import upgrade_to_window_cells

    upgrade_to_window_cells(client, database, window_seconds)


def events_table_sql(database: str, table: str = "usage_events") -> str:
    """The billed events: one row per (project_id, event_id), the first accepted copy."""
    return f"""CREATE TABLE IF NOT EXISTS {quote_identifier(database)}.{quote_identifier(table)} (
    event_id String,
    project_id LowCardinality(String),
    timestamp DateTime64(6, 'UTC'),
    window_start DateTime('UTC'),
    source LowCardinality(String),
    agent_name LowCardinality(String),
    session_id String,
    handoff_chain Array(String),
    operation LowCardinality(String),
    method LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    tool_call_count UInt32,
    tool_calls String,
    finish_reason LowCardinality(String),
    duration_ms Nullable(Float64),
    error Nullable(String),
    cost_usd Decimal(38, 18),
    price_status LowCardinality(String),
    price_source LowCardinality(String),
    catalog_provider LowCardinality(String),
    catalog_model LowCardinality(String),
    price_detail LowCardinality(String),
    provider_cost_usd Nullable(Decimal(38, 18)),
    provider_metadata String,
    context String,
    kafka_topic LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset UInt64,
    batch_index Int32,
    fingerprint UInt64,
    price_generation UInt32,
    ingested_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(price_generation)
ORDER BY (project_id, event_id)
SETTINGS index_granularity = 1024"""


def window_cells_table_sql(database: str) -> str:
    """Window totals per (level, grouping key, window, source partition), versioned by coverage."""
    return f"""CREATE TABLE IF NOT EXISTS {quote_identifier(database)}.usage_window_cells (
    level UInt32,
    grouping LowCardinality(String),
    project_id LowCardinality(String),
    agent_name LowCardinality(String),
    session_id String,
    provider LowCardinality(String),
    model LowCardinality(String),
    window_start DateTime('UTC'),
    src_topic LowCardinality(String),
    src_partition UInt32,
    covered_until UInt64,
    generation UInt32,
    events UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    cost_usd Decimal(38, 18),
    unpriced_events UInt64,
    failed_events UInt64,
    tool_calls UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (level, grouping, project_id, window_start, agent_name, session_id, provider, model, src_topic, src_partition)"""


def tool_windows_table_sql(database: str) -> str:
    """Tool calls per (project, agent, tool, window, source message), durations kept whole."""
    return f"""CREATE TABLE IF NOT EXISTS {quote_identifier(database)}.usage_tool_windows (
    project_id LowCardinality(String),
    agent_name LowCardinality(String),
    tool_name LowCardinality(String),
    window_start DateTime('UTC'),
    window_seconds UInt32,
    src_topic LowCardinality(String),
    src_partition UInt32,
    src_offset UInt64,
    calls UInt64,
    errors UInt64,
    durations_ms Array(Float64),
    version UInt32
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (project_id, window_start, agent_name, tool_name, src_topic, src_partition, src_offset)"""


STORE_INFO_TABLE = "store_info"


def store_info_table_sql(database: str) -> str:
    """Facts about the store that every writer must agree on (e.g. the window size)."""
    return f"""CREATE TABLE IF NOT EXISTS {quote_identifier(database)}.{STORE_INFO_TABLE} (
    name String,
    value String
) ENGINE = ReplacingMergeTree
ORDER BY name"""


def rejections_table_sql(database: str) -> str:
    """Every dead letter, keyed by where it came from (a replay rewrites the same row)."""
    return f"""CREATE TABLE IF NOT EXISTS {quote_identifier(database)}.usage_rejections (
    kafka_topic LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset UInt64,
    batch_index Int32,
    reason LowCardinality(String),
    detail String,
    event_id String,
    project_id String,
    raw String,
    rejected_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(rejected_at)
ORDER BY (kafka_topic, kafka_partition, kafka_offset, batch_index)"""


def current_schema_statements(database: str) -> tuple[str, ...]:
    """The whole current layout, for a store that has nothing yet (no data to move)."""
    return (
        events_table_sql(database),
        window_cells_table_sql(database),
        tool_windows_table_sql(database),
        store_info_table_sql(database),
        rejections_table_sql(database),
    )


def rejections_ttl_sql(database: str, days: int) -> str:
    """Keep dead letters (which may hold text a producer should not have sent) for `days`."""
    return (
        f"ALTER TABLE {quote_identifier(database)}.usage_rejections "
        f"MODIFY TTL toDateTime(rejected_at) + INTERVAL {int(days)} DAY"
    )


def bootstrap_statements(database: str) -> tuple[str, ...]:
    """What must exist before migrations can be recorded."""
    db = quote_identifier(database)
    return (
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"""CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} (
    version UInt32,
    description String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version""",
    )


def pending_migrations(all_migrations: Iterable[Migration], applied: Iterable[int]) -> list[Migration]:
    """Migrations not yet recorded as applied, oldest first."""
    done = set(applied)
    return [m for m in sorted(all_migrations, key=lambda m: m.version) if m.version not in done]


def insert_type_names(ddl: str, columns: Sequence[str]) -> list[str]:
    """The types an insert sends for `columns` of the table `ddl` creates.

    As declared, except that a `LowCardinality(T)` column is sent as plain `T`: the server
    builds its dictionary (C++), the client does not (Python, ~5 µs an event on the hot
    path); and with the types given, an insert needs no `DESCRIBE` round trip first.
    """
    body = ddl[ddl.index("(") + 1 : ddl.rindex(") ENGINE")]
    declared: dict[str, str] = {}
    for line in body.strip().splitlines():
        name, _, kind = line.strip().rstrip(",").partition(" ")
        declared[name] = kind
    out = []
    for column in columns:
        kind = declared[column]
        if kind.startswith("LowCardinality(") and kind.endswith(")"):
            kind = kind[len("LowCardinality(") : -1]
        out.append(kind)
    return out
