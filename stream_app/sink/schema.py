"""The ClickHouse schema, as numbered migrations built by pure functions.

One DDL for the embedded engine (chDB) and a real server (25.x+). Exactness is by
construction (SPEC.md §3):

- `usage_events` is a ReplacingMergeTree keyed by (project_id, event_id): however often
  an event arrives, `FINAL` reads (and background merges) keep one row. No partitioning
  by time, because replacement only happens within a partition and a re-sent event must
  always meet its first copy.
- `usage_windows` rows are not incremented, they are *recomputed* from the deduplicated
  events of the windows a chunk touched (`window_recompute_sql`) and replace the previous
  row by a newer `version`. Replaying a chunk, or an event arriving hours late, rewrites
  the same exact totals; no materialized view counts a duplicate insert.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

MIGRATIONS_TABLE = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


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
                f"""CREATE TABLE IF NOT EXISTS {db}.usage_rejections (
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
ORDER BY (kafka_topic, kafka_partition, kafka_offset, batch_index)""",
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


def window_recompute_sql(database: str, windows: Iterable[tuple[str, datetime]], window_seconds: int) -> str:
    """Rewrite the project, agent and session windows of the given (project, start) pairs.

    Totals come from `usage_events FINAL`, so they count each event_id once however
    often it was inserted; `now64(9)` orders rewrites, and the last one read every row
    inserted before it started.
    """
    pairs = sorted(set(windows))
    if not pairs:
        raise ValueError("no windows to recompute")
    db = quote_identifier(database)
    in_list = ", ".join(f"({quote_string(p)}, {int(start.timestamp())})" for p, start in pairs)
    return f"""INSERT INTO {db}.usage_windows
SELECT
    g.1 AS grouping,
    ev_project AS project_id,
    g.2 AS agent_name,
    g.3 AS session_id,
    ev_window AS window_start,
    {int(window_seconds)} AS window_seconds,
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
    FROM {db}.usage_events FINAL
    WHERE (project_id, toUInt32(window_start)) IN ({in_list})
)
ARRAY JOIN [('project', '', ''), ('agent', ev_agent, ''), ('session', '', ev_session)] AS g
WHERE NOT (g.1 = 'session' AND g.3 = '')
GROUP BY grouping, project_id, agent_name, session_id, window_start"""
