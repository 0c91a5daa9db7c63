from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from stream_app.core.rows import EVENT_COLUMNS, REJECTION_COLUMNS, TOOL_COLUMNS
from stream_app.core.window_cells import CELL_COLUMNS
from stream_app.sink.arrow_rows import CHUNK_TABLES, ArrowSchema, arrow_type


@pytest.mark.parametrize(
    ("clickhouse", "arrow"),
    [
        ("String", pa.string()),
        ("Nullable(String)", pa.string()),
        ("UInt64", pa.uint64()),
        ("Int32", pa.int32()),
        ("Nullable(Float64)", pa.float64()),
        ("Array(String)", pa.list_(pa.string())),
        ("Array(Float64)", pa.list_(pa.float64())),
        ("DateTime('UTC')", pa.timestamp("s", tz="UTC")),
        ("DateTime64(6, 'UTC')", pa.timestamp("us", tz="UTC")),
        ("Decimal(38, 18)", pa.decimal128(38, 18)),
        ("Nullable(Decimal(38, 18))", pa.decimal128(38, 18)),
    ],
)
def test_each_clickhouse_type_the_tables_use_has_its_arrow_type(clickhouse, arrow):
    assert arrow_type(clickhouse) == arrow


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("usage_events", EVENT_COLUMNS),
        ("usage_window_cells", CELL_COLUMNS),
        ("usage_tool_windows", TOOL_COLUMNS),
        ("usage_rejections", REJECTION_COLUMNS),
    ],
)
def test_every_table_a_chunk_writes_has_an_arrow_type_per_column(table, columns):
    assert CHUNK_TABLES[table].columns == list(columns)
    assert len(CHUNK_TABLES[table].types) == len(columns)


def test_unknown_types_are_refused_by_name():
    with pytest.raises(ValueError, match="Map\\(String, String\\)"):
        arrow_type("Map(String, String)")


def test_values_arrive_exactly():
    schema = ArrowSchema(
        ["cost", "at", "start", "note", "chain"],
        ["Decimal(38, 18)", "DateTime64(6, 'UTC')", "DateTime('UTC')", "Nullable(String)", "Array(String)"],
    )
    cost = Decimal("12345678901234567890.123456789012345678")
    at = datetime(2026, 12, 2, 15, 4, 5, 678901, tzinfo=UTC)
    table = schema.table([(cost, at, datetime(2026, 12, 2, 15, 4, tzinfo=UTC), None, ["a", "b"]), (Decimal(0), at, at, "x", [])])

    assert table.column_names == ["cost", "at", "start", "note", "chain"]
    assert table.to_pylist()[0] == {
        "cost": cost, "at": at, "start": datetime(2026, 12, 2, 15, 4, tzinfo=UTC), "note": None, "chain": ["a", "b"],
    }


def test_no_rows_make_an_empty_table_and_short_rows_are_refused():
    schema = ArrowSchema(["a", "b"], ["String", "UInt32"])

    assert schema.table([]).num_rows == 0
    with pytest.raises(ValueError):
        schema.table([("x",)])


def test_a_column_of_one_value_throughout_is_that_value_in_every_row():
    at = datetime(2026, 12, 2, 15, 4, 5, 678901, tzinfo=UTC)
    schema = ArrowSchema(["at", "topic", "n", "note"], ["DateTime64(6, 'UTC')", "String", "UInt32", "Nullable(String)"])

    table = schema.table([(at, "t", 7, None)] * 3)

    assert table.to_pylist() == [{"at": at, "topic": "t", "n": 7, "note": None}] * 3
    assert table.column("at").type == pa.timestamp("us", tz="UTC")


def test_a_float_column_keeps_each_value_even_when_all_compare_equal():
    schema = ArrowSchema(["ms"], ["Nullable(Float64)"])

    values = [v for (v,) in [tuple(r.values()) for r in schema.table([(0.0,), (-0.0,)]).to_pylist()]]

    assert [str(v) for v in values] == ["0.0", "-0.0"]


def test_many_rows_are_converted_block_by_block_into_one_table_in_order():
    from stream_app.sink.arrow_rows import BLOCK_ROWS

    schema = ArrowSchema(["n", "topic", "note"], ["UInt32", "String", "Nullable(String)"])
    rows = [(i, "t", None if i % 7 else str(i)) for i in range(2 * BLOCK_ROWS + 3)]

    table = schema.table(rows)

    assert table.num_rows == len(rows)
    assert [tuple(r.values()) for r in table.to_pylist()] == rows
    # A column of one value in every block (the topic) is still that value everywhere.
    assert set(table.column("topic").to_pylist()) == {"t"}
