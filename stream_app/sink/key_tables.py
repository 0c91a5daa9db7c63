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
from functools import cache
from typing import Any

from stream_app.core.window_cells import CELL_COLUMNS, CellKey, StoredCell
from stream_app.sink.arrow_rows import ArrowSchema
from stream_app.sink.lookups import LOOKUP_COLUMNS
from stream_app.sink.schema import quote_identifier

# Below this many keys a look-up is spelled out in SQL (`lookups.py`).
TABLE_LOOKUP_FROM = 300

_EVENT_KEY_COLUMNS = (("project_id", "String"), ("event_id", "String"))
# `n`: the key's place in the look-up, so a match comes back as a number, not as ten
# columns to read and turn back into a key.
_CELL_KEY_COLUMNS = (
    ("n", "UInt32"),
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
assert tuple(name for name, _t in _CELL_KEY_COLUMNS[1:]) == CellKey._fields
# What a cell look-up returns after the key's number: the stored cell, then its version.
_CELL_VALUES = CELL_COLUMNS[len(CellKey._fields) :]


@cache
def _arrow_schema(columns: tuple[tuple[str, str], ...]) -> ArrowSchema:
    """How a key table's columns are sent (keys go in as Arrow, like chunk rows)."""
    return ArrowSchema([name for name, _t in columns], [kind for _name, kind in columns])


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
    """(n, covered_until, generation, totals..., version) of the newest stored row of each cell in `table`."""
    db = quote_identifier(database)
    keys = ", ".join(CellKey._fields)
    listed = quote_identifier(table)
    return (
        f"SELECT k.n, {', '.join(f'c.{name}' for name in _CELL_VALUES)} "
        f"FROM (SELECT {', '.join(CELL_COLUMNS)} FROM {db}.usage_window_cells "
        f"WHERE ({keys}) IN (SELECT {keys} FROM {db}.{listed})) AS c "
        f"INNER JOIN {db}.{listed} AS k USING ({keys}) "
        "ORDER BY c.version DESC LIMIT 1 BY k.n"
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
        return self._matches(self.events_table, _EVENT_KEY_COLUMNS, list(zip(*keys)), events_by_table_sql)

    def stored_cells(self, keys: Sequence[CellKey]) -> dict[CellKey, StoredCell]:
        """The newest stored row of each of `keys` that the store has."""
        columns = [list(range(len(keys))), *zip(*keys)] if keys else []
        rows = self._matches(self.cells_table, _CELL_KEY_COLUMNS, columns, cells_by_table_sql)
        return {keys[row[0]]: StoredCell(row[1], row[2], tuple(row[3:-1])) for row in rows}

    def _matches(self, table: str, columns: tuple[tuple[str, str], ...], data: Sequence[Sequence], sql: Any) -> list[tuple]:
        """Fill `table` with `data`, given column by column, and return the rows of `sql` over it."""
        db = quote_identifier(self.database)
        self.client.command(f"TRUNCATE TABLE {db}.{quote_identifier(table)}")
        if data:
            self.client.insert_arrow(table, _arrow_schema(columns).columns_table(data), database=self.database)
        return list(self.client.query(sql(self.database, table)).result_rows)
