import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_app.sink.arrow_rows import ArrowSchema
from stream_app.sink.sliced_insert import SlicedInserter, slices

SCHEMA = ArrowSchema(["n"], ["UInt32"])


def NEVER(a, b):  # noqa: N802 - rows that never share a message
    return False


@given(st.integers(0, 20_000), st.integers(1, 5), st.integers(1, 5_000))
def test_slices_are_contiguous_in_order_and_not_too_small(n, count, min_rows):
    rows = [(i,) for i in range(n)]

    parts = slices(rows, count, min_rows)

    assert [row for part in parts for row in part] == rows
    assert len(parts) <= count
    assert all(len(part) >= min(min_rows, n) for part in parts)
    if parts:
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


@given(st.lists(st.integers(1, 1_000), min_size=0, max_size=60), st.integers(1, 4), st.integers(1, 3_000))
def test_a_slice_never_cuts_a_message(message_sizes, count, min_rows):
    rows = [(m, i) for m, size in enumerate(message_sizes) for i in range(size)]

    parts = slices(rows, count, min_rows, same_message=lambda a, b: a[0] == b[0])

    assert [row for part in parts for row in part] == rows
    assert len(parts) <= count
    for before, after in zip(parts, parts[1:]):
        assert before[-1][0] != after[0][0]  # the message before a cut ends there


def test_real_event_rows_are_cut_between_messages():
    from stream_app.core.rows import EVENT_COLUMNS, same_message

    at = EVENT_COLUMNS.index("kafka_offset")
    rows = [tuple(offset if c == at else 0 for c in range(len(EVENT_COLUMNS))) for offset in (1, 1, 1, 2, 2, 3)]

    assert [len(p) for p in slices(rows, 2, 1, same_message=same_message)] == [3, 3]
    assert same_message(rows[0], rows[2]) and not same_message(rows[2], rows[3])


def test_rows_are_written_in_order_and_then_runs_before_the_last_write_returns():
    written: list[list[int]] = []
    last_write_started = threading.Event()
    release = threading.Event()

    def write(table):
        values = table.column("n").to_pylist()
        if values[-1] == 9_999:
            last_write_started.set()
            assert release.wait(5)
        written.append(values)

    def then(done):
        assert done == []
        assert last_write_started.wait(5)  # computed while the last slice is being written
        release.set()
        return "cells"

    inserter = SlicedInserter()
    try:
        assert inserter.insert(SCHEMA, [(i,) for i in range(10_000)], write, then, NEVER) == "cells"
    finally:
        inserter.close()
    assert [v for part in written for v in part] == list(range(10_000))
    assert len(written) == 2


def test_a_failed_slice_stops_the_rest_and_its_error_is_raised():
    written = []

    def write(table):
        written.append(table.num_rows)
        raise ConnectionError("refused")

    inserter = SlicedInserter()
    try:
        with pytest.raises(ConnectionError, match="refused"):
            inserter.insert(SCHEMA, [(i,) for i in range(10_000)], write, lambda done: None, NEVER)
    finally:
        inserter.close()
    assert written == [5_000]


def test_an_error_in_then_waits_for_the_write_before_it_is_raised():
    done = []

    def write(table):
        threading.Event().wait(0.2)
        done.append(table.num_rows)

    def then(done):
        raise ValueError("fold failed")

    inserter = SlicedInserter()
    try:
        with pytest.raises(ValueError, match="fold failed"):
            inserter.insert(SCHEMA, [(i,) for i in range(100)], write, then, NEVER)
        assert done == [100]  # the write finished before the error came out
    finally:
        inserter.close()


def test_no_rows_write_nothing_and_still_run_then():
    inserter = SlicedInserter()
    try:
        assert inserter.insert(SCHEMA, [], lambda table: pytest.fail("nothing to write"), lambda done: 7, NEVER) == 7
    finally:
        inserter.close()


def test_steps_before_run_first_in_order_on_the_writer_and_then_gets_their_results():
    order: list[str] = []
    main = threading.get_ident()

    def step(name):
        def run():
            assert threading.get_ident() != main  # on the writer thread, while slices are built
            order.append(name)
            return name.upper()
        return run

    def write(table):
        order.append(f"slice {table.num_rows}")

    def then(done):
        assert order[:2] == ["read", "small"]
        return done

    inserter = SlicedInserter()
    try:
        done = inserter.insert(SCHEMA, [(i,) for i in range(10_000)], write, then, NEVER, [step("read"), step("small")])
    finally:
        inserter.close()
    assert done == ["READ", "SMALL"]
    assert order == ["read", "small", "slice 5000", "slice 5000"]


def test_a_failed_step_before_stops_every_write_after_it():
    written = []

    def refuse():
        raise ConnectionError("read refused")

    inserter = SlicedInserter()
    try:
        with pytest.raises(ConnectionError, match="read refused"):
            inserter.insert(
                SCHEMA, [(i,) for i in range(10_000)], lambda table: written.append(table.num_rows),
                lambda done: pytest.fail("then needs what failed"), NEVER, [refuse, lambda: written.append("small")],
            )
    finally:
        inserter.close()
    assert written == []  # neither the small table nor any slice was written after the failed read
