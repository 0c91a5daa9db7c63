"""Window cells rebuilt from the billed events, in SQL: upgrades, `reprice`, repairs.

The worker folds cells in Python as it writes (stream_app/core/window_cells.py). Three
jobs need the same cells from what is already stored: the upgrade of an older store,
`reprice` (the cells of repriced events must carry the new prices), and the repair of
a message whose events were stored while its cells were refused. They all use
`cells_from_events_sql`, which sums exactly what the Python aggregator sums (tested
against it).

Why a cell can be recomputed from events alone: a chunk writes its events (one insert, or
slices cut only between messages) before its cells, in offset order, so the events stored
for a partition are always
every billed event of a prefix of its messages. A cell built from them covers up to
one past the newest offset it holds, or further if its stored row says so (no message
in between touched it, or its events would be stored). Its version marks it rebuilt,
so it replaces a fold of the same coverage; a worker that folds past it later reads it
as its starting point. A worker that read the cell just before a rebuild and writes
just after it wins on coverage with the old prices: `reprice` therefore looks again
for stale days until none is left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

from stream_app.core.window_cells import CELL_COLUMNS, cell_levels
from stream_app.sink.schema import quote_identifier, quote_string, window_cells_table_sql

log = logging.getLogger(__name__)

# Events aggregated per statement: bounds the engine's memory for the 12 cells of each event.
EVENTS_PER_REBUILD = 2_000_000
_DAY = 86_400


def cells_from_events_sql(database: str, project_id: str, first: date, last: date, levels: tuple[int, ...]) -> str:
    """Rebuild every cell of `project_id` for the UTC days first..last (inclusive) from its events."""
    db = quote_identifier(database)
    lo, hi = _epoch(first), _epoch(last) + _DAY
    in_range = (
        f"project_id = {quote_string(project_id)} "
        f"AND window_start >= toDateTime({lo}, 'UTC') AND window_start < toDateTime({hi}, 'UTC')"
    )
    keys = "level, grouping, project_id, agent_name, session_id, provider, model, window_start, src_topic, src_partition"
    levels_list = ", ".join(str(int(level)) for level in levels)
    return f"""INSERT INTO {db}.usage_window_cells ({", ".join(CELL_COLUMNS)})
SELECT {keys}, covered, generation, events, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    reasoning_tokens, cost_usd, unpriced_events, failed_events, tool_calls,
    bitOr(bitOr(bitShiftLeft(toUInt64(covered), 21), bitShiftLeft(toUInt64(generation), 1)), 1) AS version
FROM (
    SELECT a.*, greatest(a.from_events, c.covered_until) AS covered
    FROM (
        SELECT lvl AS level, g.1 AS grouping, ev_project AS project_id, g.2 AS agent_name, g.3 AS session_id,
            g.4 AS provider, g.5 AS model, toDateTime(intDiv(toUInt32(ev_window), lvl) * lvl, 'UTC') AS window_start,
            ev_topic AS src_topic, ev_partition AS src_partition,
            max(ev_offset) + 1 AS from_events, max(price_generation) AS generation,
            count() AS events, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
            sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
            sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd,
            countIf(price_status != 'priced') AS unpriced_events, countIf(error IS NOT NULL) AS failed_events,
            sum(tool_call_count) AS tool_calls
        FROM (
            SELECT project_id AS ev_project, toString(agent_name) AS ev_agent, session_id AS ev_session,
                toString(provider) AS ev_provider, toString(model) AS ev_model, window_start AS ev_window,
                toString(kafka_topic) AS ev_topic, kafka_partition AS ev_partition, kafka_offset AS ev_offset,
                price_generation, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                reasoning_tokens, cost_usd, price_status, error, tool_call_count
            FROM {db}.usage_events FINAL WHERE {in_range}
        )
        ARRAY JOIN [{levels_list}] AS lvl
        ARRAY JOIN [
            ('project', '', '', '', ''),
            ('agent', ev_agent, '', '', ''),
            ('session', '', ev_session, '', ''),
            ('model', '', '', ev_provider, ev_model)
        ] AS g
        GROUP BY {keys}
    ) AS a
    LEFT JOIN (
        SELECT {keys}, max(covered_until) AS covered_until
        FROM {db}.usage_window_cells WHERE {in_range}
        GROUP BY {keys}
    ) AS c USING ({keys})
)
SETTINGS max_partitions_per_insert_block = 0, join_use_nulls = 0"""


def event_days_sql(database: str, where: str = "") -> str:
    """(project_id, day, billed events) for every day that has billed events matching `where`."""
    db = quote_identifier(database)
    condition = f" WHERE {where}" if where else ""
    return (
        f"SELECT project_id, toDate(window_start) AS day, count() FROM {db}.usage_events FINAL{condition} "
        "GROUP BY project_id, day ORDER BY project_id, day"
    )


def stale_days_sql(database: str, where: str = "") -> str:
    """(project_id, day, events) of days whose events carry a newer price generation than their cells.

    A day's project-level day cell holds every event of that day and partition, and a
    rebuild writes all of a day's cells in one insert (one month partition): when it
    is current, so are the day's other cells.
    """
    db = quote_identifier(database)
    conditions = ["price_generation > 0", *([where] if where else [])]
    return f"""SELECT e.project_id, e.day, sum(e.n)
FROM (
    SELECT project_id, toDate(window_start) AS day, toString(kafka_topic) AS topic, kafka_partition AS part,
        max(price_generation) AS generation, count() AS n
    FROM {db}.usage_events FINAL WHERE {" AND ".join(conditions)}
    GROUP BY project_id, day, topic, part
) AS e
LEFT JOIN (
    SELECT project_id, toDate(window_start) AS day, toString(src_topic) AS topic, src_partition AS part,
        argMax(generation, version) AS generation
    FROM {db}.usage_window_cells WHERE level = {_DAY} AND grouping = 'project'
    GROUP BY project_id, day, topic, part
) AS c ON e.project_id = c.project_id AND e.day = c.day AND e.topic = c.topic AND e.part = c.part
WHERE e.generation > c.generation
GROUP BY e.project_id, e.day
ORDER BY e.project_id, e.day
SETTINGS join_use_nulls = 0"""


def day_batches(days: Iterable[tuple[str, date, int]], limit: int = EVENTS_PER_REBUILD) -> Iterator[tuple[str, date, date]]:
    """(project, first day, last day) runs of consecutive days holding at most `limit` events each."""
    run: list[Any] | None = None
    for project, day, count in days:
        day = _as_date(day)
        joins = (
            run is not None and run[0] == project and day == run[2] + timedelta(days=1) and run[3] + count <= limit
        )
        if joins:
            run[2], run[3] = day, run[3] + count
            continue
        if run is not None:
            yield run[0], run[1], run[2]
        run = [project, day, day, count]
    if run is not None:
        yield run[0], run[1], run[2]


def rebuild_days(client: Any, database: str, window_seconds: int, days: Iterable[tuple[str, date, int]]) -> int:
    """Rebuild the cells of these (project, day, events) days; returns how many days."""
    levels = cell_levels(window_seconds)
    rebuilt = 0
    for project, first, last in day_batches(days):
        client.command(cells_from_events_sql(database, project, first, last, levels))
        rebuilt += (last - first).days + 1
    return rebuilt


def upgrade_to_window_cells(client: Any, database: str, window_seconds: int) -> None:
    """Migration 4: cells from the billed events, then the per-message window rows go."""
    db = quote_identifier(database)
    client.command(window_cells_table_sql(database))
    days = [(p, d, int(n)) for p, d, n in client.query(event_days_sql(database)).result_rows]
    if days:
        log.warning("upgrading the store: building window cells from %d billed events", sum(n for *_x, n in days))
    rebuild_days(client, database, window_seconds, days)
    client.command(f"DROP TABLE IF EXISTS {db}.usage_windows")


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value
