"""Window cells: levels, contributions and the fold past a stored coverage (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stream_app.core.window_cells import (
    CellKey,
    StoredCell,
    cell_levels,
    cell_totals,
    cell_version,
    chunk_ends,
    contributions,
    fold,
    level_start,
)
from stream_app.core.windows import Source

T = datetime(2026, 11, 22, 12, 34, tzinfo=UTC)


def key(level: int = 60, partition: int = 0) -> CellKey:
    return CellKey(level, "project", "p", "", "", "", "", level_start(T, level), "t", partition)


def totals(events: int) -> list:
    return [events, 10 * events, 0, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(("window", "levels"), [(60, (60, 3600, 86400)), (300, (300, 3600, 86400)), (3600, (3600, 86400)), (86400, (86400,)), (5400, (5400, 86400))])
def test_levels_are_the_window_the_hour_and_the_day_where_they_tile(window, levels):
    assert cell_levels(window) == levels


def test_a_window_that_does_not_divide_a_day_is_refused():
    with pytest.raises(ValueError, match="does not divide a day"):
        cell_levels(7)


def test_versions_order_by_coverage_then_generation_then_rebuilt():
    assert cell_version(10, 0) < cell_version(10, 0, rebuilt=True) < cell_version(10, 1) < cell_version(11, 0)
    with pytest.raises(ValueError):
        cell_version(1, 2**20)


def test_contributions_spread_each_message_over_every_level_in_offset_order():
    source = lambda offset: Source("t", 0, offset)  # noqa: E731
    cells = contributions(
        [(("project", "p", "", "", "", "", level_start(T, 60), source(7)), totals(2)),
         (("project", "p", "", "", "", "", level_start(T, 60), source(3)), totals(1))],
        (60, 3600, 86400),
    )

    assert sorted(cells) == sorted([key(60), key(3600), key(86400)])
    assert [offset for offset, _t in cells[key(3600)]] == [3, 7]
    assert chunk_ends(cells) == {("t", 0): 8}


def test_a_new_cell_takes_the_chunk_whole_and_covers_to_its_end():
    (row,) = fold({key(): [(3, totals(1)), (7, totals(2))]}, {})

    assert row[:10] == tuple(key()) and row[10:12] == (8, 0)
    assert row[12] == 3 and row[-1] == cell_version(8, 0)


def test_only_messages_past_the_stored_coverage_are_added():
    stored = {key(): StoredCell(covered_until=5, generation=2, totals=tuple(totals(4)))}

    (row,) = fold({key(): [(3, totals(1)), (7, totals(2))]}, stored)

    assert row[12] == 4 + 2  # offset 3 is already in the stored row
    assert row[10:12] == (8, 2)  # coverage moves to the chunk's end; the generation is kept


def test_a_replay_of_covered_messages_writes_nothing():
    stored = {key(): StoredCell(covered_until=8, generation=0, totals=tuple(totals(3)))}

    assert fold({key(): [(3, totals(1)), (7, totals(2))]}, stored) == []


def test_the_winning_row_of_a_cell_is_the_highest_version():
    rows = fold({key(): [(1, totals(1))]}, {}) + fold({key(): [(1, totals(1)), (2, totals(5))]}, {})

    assert cell_totals(rows)[key()][0] == 6
