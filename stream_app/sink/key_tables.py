"""Large key look-ups through a private in-memory table instead of a long SQL `IN` list.

A chunk of 25,000 events asks for 25,000 (project_id, event_id) keys. Spelled out as SQL
literals they cost ClickHouse's parser about 10 µs each — more than the look-up itself.
Inserted as a column block into a `Memory` table (one round trip, no parsing) and read
back by `IN (SELECT …)`, the same keys cost about a tenth of that, and ClickHouse still
uses the primary key of the table looked in (the set is built before the index is read).

Each sink has its own tables (the name carries the process and a random part), so
several workers on one server never see each other's keys; `drop` removes them when the
sink closes. Small look-ups keep the plain statements (`lookups.py`): three round trips
are not worth it for a handful of keys.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import Any

from stream_app.core.window_cells import CELL_COLUMNS, CellKey
from stream_app.sink.lookups import LOOKUP_COLUMNS
from stream_app.sink.schema import quote_identifier

# Below this many keys a look-up is spelled out in SQL (`lookups.py`).
TABLE_LOOKUP_FROM = 300

_EVENT_KEY_COLUMNS = (("project_id", "String"), ("event_id", "String"))
_CELL_KEY_COLUMNS = (
    ("level", "UInt32"),
    ("grouping", "String"),
    ("project_id", "String"),
    ("agent_name", "String"),
    ("session_id", "String"),
    ("provider", "String"),
    ("model", "String"),
    ("window_start", "DateTime('UTC')"),
    ("src_topic", "String"),
    ("src_partition", "UInt32"),
)
assert tuple(name for name, _t in _CELL_KEY_COLUMNS) == CellKey._fields


def private_table_names(prefix: str = "_keys") -> tuple[str, str]:
    """Names of this sink's event-key and cell-key tables."""
    tag = f"{os.getpid()}_{secrets.token_hex(4)}"
    return f"{prefix}_events_{tag}", f"{prefix}_cells_{tag}"


def memory_table_sql(database: str, table: str, columns: Sequence[tuple[str, str]]) -> str:
    listed = ", ".join(f"{name} {kind}" for name, kind in columns)
    return f"CREATE TABLE IF NOT EXISTS {quote_identifier(database)}.{quote_identifier(table)} ({listed}) ENGINE = Memory"


def events_by_table_sql(database: str, table: str) -> str:
    """`LOOKUP_COLUMNS` of every stored key listed in `table` (the newest generation of each)."""
    db = quote_identifier(database)
    return (
        f"SELECT {', '.join(LOOKUP_COLUMNS)} FROM {db}.usage_events "
        f"WHERE (project_id, event_id) IN (SELECT project_id, event_id FROM {db}.{quote_identifier(table)}) "
        "ORDER BY price_generation DESC LIMIT 1 BY project_id, event_id"
    )


def cells_by_table_sql(database: str, table: str) -> str:
    """`CELL_COLUMNS` rows (every unmerged version) of the cells listed in `table`."""
    db = quote_identifier(database)
    keys = ", ".join(CellKey._fields)
    return (
        f"SELECT {', '.join(CELL_COLUMNS)} FROM {db}.usage_window_cells "
        f"WHERE ({keys}) IN (SELECT {keys} FROM {db}.{quote_identifier(table)})"
    )


class KeyTables:
    """A sink's two private key tables: fill one, read the matches, empty it."""

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.database = database
        self.events_table, self.cells_table = private_table_names()

    def create(self) -> None:
        self.client.command(memory_table_sql(self.database, self.events_table, _EVENT_KEY_COLUMNS))
        self.client.command(memory_table_sql(self.database, self.cells_table, _CELL_KEY_COLUMNS))

    def drop(self) -> None:
        db = quote_identifier(self.database)
        for table in (self.events_table, self.cells_table):
            self.client.command(f"DROP TABLE IF EXISTS {db}.{quote_identifier(table)}")

    def stored_events(self, keys: Sequence[tuple[str, str]]) -> list[tuple]:
        return self._matches(self.events_table, _EVENT_KEY_COLUMNS, keys, events_by_table_sql)

    def stored_cells(self, keys: Sequence[CellKey]) -> list[tuple]:
        return self._matches(self.cells_table, _CELL_KEY_COLUMNS, keys, cells_by_table_sql)

    def _matches(self, table: str, columns: Sequence[tuple[str, str]], keys: Sequence[tuple], sql: Any) -> list[tuple]:
        db = quote_identifier(self.database)
        self.client.command(f"TRUNCATE TABLE {db}.{quote_identifier(table)}")
        self.client.insert(table, list(keys), column_names=[name for name, _t in columns], database=self.database)
        return list(self.client.query(sql(self.database, table)).result_rows)
