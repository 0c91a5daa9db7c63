"""A chunk's rows as an Arrow table, the form they are inserted in.

clickhouse-connect's Native insert turns every value into bytes in Python (a Decimal
through its text, a datetime through arithmetic): ~6 µs an event row on the worker's hot
path. pyarrow converts whole columns in C++ and ClickHouse reads Arrow natively, which
halves that (README "Performance"). The values are the same Python values either way;
this module names the Arrow type of each ClickHouse type the tables use, and each chunk
table's columns (`CHUNK_TABLES`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from operator import itemgetter

import pyarrow as pa

from stream_app.core.rows import EVENT_COLUMNS, REJECTION_COLUMNS, TOOL_COLUMNS
from stream_app.core.window_cells import CELL_COLUMNS
from stream_app.sink.schema import (
    events_table_sql,
    insert_type_names,
    rejections_table_sql,
    tool_windows_table_sql,
    window_cells_table_sql,
)

_SCALARS: dict[str, pa.DataType] = {
    "String": pa.string(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Float64": pa.float64(),
    "DateTime('UTC')": pa.timestamp("s", tz="UTC"),
}
_WRAPPED = re.compile(r"(Nullable|LowCardinality|Array)\((.*)\)")
_DATETIME64 = re.compile(r"DateTime64\((\d), 'UTC'\)")
_DECIMAL = re.compile(r"Decimal\((\d+), (\d+)\)")
_TIME_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}
# Rows converted to Arrow at a time: their tuples (~350 bytes each for an event) fit in L2.
BLOCK_ROWS = 1_000


def arrow_type(clickhouse_type: str) -> pa.DataType:
    """The Arrow type a column of `clickhouse_type` is sent as (nulls allowed where it is Nullable)."""
    if clickhouse_type in _SCALARS:
        return _SCALARS[clickhouse_type]
    wrapped = _WRAPPED.fullmatch(clickhouse_type)
    if wrapped:
        inner = arrow_type(wrapped.group(2))
        return pa.list_(inner) if wrapped.group(1) == "Array" else inner
    moment = _DATETIME64.fullmatch(clickhouse_type)
    if moment and int(moment.group(1)) in _TIME_UNITS:
        return pa.timestamp(_TIME_UNITS[int(moment.group(1))], tz="UTC")
    decimal = _DECIMAL.fullmatch(clickhouse_type)
    if decimal and int(decimal.group(1)) <= 38:
        return pa.decimal128(int(decimal.group(1)), int(decimal.group(2)))
    raise ValueError(f"no Arrow type is known for the ClickHouse type {clickhouse_type!r}")


class ArrowSchema:
    """Columns and their Arrow types for one table's inserts."""

    def __init__(self, columns: Sequence[str], clickhouse_types: Sequence[str]) -> None:
        self.columns = list(columns)
        self.types = [arrow_type(t) for t in clickhouse_types]

    def table(self, rows: Sequence[tuple]) -> pa.Table:
        """Rows (tuples in column order) as one Arrow table.

        Column by column: one column's values are held in Python at a time, not the whole
        table transposed (a chunk's rows can be hundreds of thousands of cells). And block
        by block: a block's rows stay in the CPU's cache while each of its columns is read
        (a fifth less time than whole columns of a 12,500-row slice; README "Performance").
        """
        width = len(self.columns)
        if any(len(row) != width for row in rows):
            raise ValueError(f"a row does not have the {width} values the table takes")
        if len(rows) <= BLOCK_ROWS:
            return self._block(rows)
        return pa.concat_tables([self._block(rows[i : i + BLOCK_ROWS]) for i in range(0, len(rows), BLOCK_ROWS)])

    def _block(self, rows: Sequence[tuple]) -> pa.Table:
        arrays = [_array(list(map(itemgetter(i), rows)), kind) for i, kind in enumerate(self.types)]
        return pa.Table.from_arrays(arrays, names=self.columns)

    def columns_table(self, data: Sequence[Sequence]) -> pa.Table:
        """Columns (one sequence of values per column, in order) as one Arrow table."""
        if len(data) != len(self.columns):
            raise ValueError(f"{len(data)} columns given; the table takes {len(self.columns)}")
        arrays = [_array(values, kind) for values, kind in zip(data, self.types, strict=True)]
        return pa.Table.from_arrays(arrays, names=self.columns)


def _array(values: Sequence, kind: pa.DataType) -> pa.Array:
    """One column; a column of one value throughout (a chunk's ingest time, its topic) is
    converted once and repeated, which for a timestamp is a hundred times cheaper. Not for
    floats, where equal is not the same (0.0 == -0.0)."""
    if (
        len(values) > 1
        and not pa.types.is_floating(kind)
        and values[0] is not None
        and values.count(values[0]) == len(values)
    ):
        return pa.repeat(pa.scalar(values[0], type=kind), len(values))
    return pa.array(values, type=kind)


# What each chunk insert sends, by table: its columns and their Arrow types.
CHUNK_TABLES: dict[str, ArrowSchema] = {
    table: ArrowSchema(columns, insert_type_names(ddl("db"), columns))
    for table, columns, ddl in (
        ("usage_rejections", REJECTION_COLUMNS, rejections_table_sql),
        ("usage_tool_windows", TOOL_COLUMNS, tool_windows_table_sql),
        ("usage_events", EVENT_COLUMNS, events_table_sql),
        ("usage_window_cells", CELL_COLUMNS, window_cells_table_sql),
    )
}
