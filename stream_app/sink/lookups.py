"""Key look-ups on the billed events, built as exact SQL strings by pure functions.

A chunk asks "which of these (project_id, event_id) keys are billed already, and from
which message?" The table is ordered by exactly that key, so ClickHouse reads only the
granules the ids fall in: a cost that follows the chunk, not the history. Ids go in
bounded lists (`IDS_PER_STATEMENT`), so no statement outgrows `max_query_size`
however large or spread out a chunk is (a backfill of a month in one chunk included).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from stream_app.core.counting import CONTENT_FIELDS
from stream_app.core.window_cells import CELL_COLUMNS, CellKey
from stream_app.sink.schema import quote_identifier, quote_string

# 1,000 ids of up to 128 characters stay far below the 262,144-byte default max_query_size.
IDS_PER_STATEMENT = 1000

LOOKUP_COLUMNS: tuple[str, ...] = (
    "project_id",
    "event_id",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "batch_index",
    "fingerprint",
)

# Everything `content_from_stored` compares, plus the key: the stored column of each content field.
STORED_CONTENT_COLUMNS: tuple[str, ...] = (
    "project_id",
    "event_id",
    *("provider_cost_usd" if name == "provider_cost" else name.removeprefix("usage.") for name in CONTENT_FIELDS),
)


def lookup_statements(database: str, ids_by_project: dict[str, list[str]]) -> Iterator[str]:
    """Statements that return `LOOKUP_COLUMNS` for every stored key among the ids."""
    yield from _keyed_statements(database, ids_by_project, LOOKUP_COLUMNS)


def stored_content_statements(database: str, ids_by_project: dict[str, list[str]]) -> Iterator[str]:
    """Statements that return `STORED_CONTENT_COLUMNS` of the stored copies of the ids."""
    yield from _keyed_statements(database, ids_by_project, STORED_CONTENT_COLUMNS)


def _keyed_statements(database: str, ids_by_project: dict[str, list[str]], columns: tuple[str, ...]) -> Iterator[str]:
    # One statement per IDS_PER_STATEMENT keys, whatever the projects: a chunk of many small
    # projects' messages makes a few look-ups, not one per project.
    db = quote_identifier(database)
    selected = ", ".join(columns)
    keys = [(project_id, event_id) for project_id in sorted(ids_by_project) for event_id in ids_by_project[project_id]]
    for i in range(0, len(keys), IDS_PER_STATEMENT):
        part = keys[i : i + IDS_PER_STATEMENT]
        projects = sorted({p for p, _e in part})
        if len(projects) == 1:
            listed = ", ".join(quote_string(e) for _p, e in part)
            where = f"project_id = {quote_string(projects[0])} AND event_id IN ({listed})"
        else:
            listed = ", ".join(f"({quote_string(p)}, {quote_string(e)})" for p, e in part)
            where = f"(project_id, event_id) IN ({listed})"
        # LIMIT 1 BY: a repriced event has a row per generation until they merge.
        yield (
            f"SELECT {selected} FROM {db}.usage_events WHERE {where} "
            f"ORDER BY price_generation DESC LIMIT 1 BY project_id, event_id"
        )


# Window cells are looked up by their key: the (level, grouping, project, window start)
# prefixes a chunk touches, then the rest of the key as a filter on those few granules.
CELLS_PER_STATEMENT = 1000


def stored_cell_statements(database: str, keys: list[CellKey]) -> Iterator[str]:
    """Statements returning `CELL_COLUMNS` rows (every unmerged version) of the given cells."""
    db = quote_identifier(database)
    selected = ", ".join(CELL_COLUMNS)
    ordered = sorted(keys)
    for i in range(0, len(ordered), CELLS_PER_STATEMENT):
        part = ordered[i : i + CELLS_PER_STATEMENT]
        prefixes = sorted({(k.level, k.grouping, k.project_id, _epoch(k.window_start)) for k in part})
        rests = sorted({(k.agent_name, k.session_id, k.provider, k.model, k.src_topic, k.src_partition) for k in part})
        listed_prefixes = ", ".join(f"({lv}, {quote_string(g)}, {quote_string(p)}, {w})" for lv, g, p, w in prefixes)
        listed_rests = ", ".join(
            f"({quote_string(a)}, {quote_string(s)}, {quote_string(pr)}, {quote_string(m)}, {quote_string(t)}, {int(n)})"
            for a, s, pr, m, t, n in rests
        )
        yield (
            f"SELECT {selected} FROM {db}.usage_window_cells "
            f"WHERE (level, grouping, project_id, window_start) IN ({listed_prefixes}) "
            f"AND (agent_name, session_id, provider, model, src_topic, src_partition) IN ({listed_rests})"
        )


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())
