"""Window cells: each window's running total per Kafka partition, folded exactly (pure, no I/O).

A billing query must read a few rows per window, whatever history is stored, and a
replayed message must never count twice. A *cell* is one window of one group at one
level (the window size, an hour, a day), for one source partition:

    (level, grouping, project, agent, session, provider, model, window_start, topic, partition)

Its stored row carries `covered_until`: the row holds the contributions of every
message of that partition with an offset below it, and of none above. A worker folds a
chunk into a cell by adding only the messages at or past the stored `covered_until`,
then writes the sum with `covered_until` = the chunk's end. That value is a function of
the data alone (which copies are billed is decided by the data, SPEC.md §3), so:

- a replay (a crash between two writes, a second worker racing on a rebalance) finds
  its messages already covered and adds nothing, or writes an identical row;
- of two rows for one cell the one covering more wins (ReplacingMergeTree on
  `version`, which orders by `covered_until`, then by price generation), never a clock.

The hour and day levels are what keep "all time" or "30 days by hour" a read of a few
hundred rows; a range is cut into whole days, whole hours and single windows
(`stream_app/sink/levels.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from datetime import datetime, timezone
from typing import NamedTuple

from stream_app.core.windows import WINDOW_TOTAL_FIELDS

HOUR = 3600
DAY = 86_400

# version = covered_until << 21 | generation << 1 | rebuilt: more coverage wins; at equal
# coverage a newer price generation wins, and a row rebuilt from stored events wins over
# a fold of the same coverage and generation.
_GENERATION_BITS = 20
MAX_GENERATION = (1 << _GENERATION_BITS) - 1


def cell_levels(window_seconds: int) -> tuple[int, ...]:
    """The levels a window is kept at: its own size, an hour and a day where they are whole multiples."""
    if window_seconds < 1 or DAY % window_seconds:
        raise ValueError(f"a window of {window_seconds} s does not divide a day")
    return tuple(sorted({window_seconds, DAY} | ({HOUR} if HOUR % window_seconds == 0 and HOUR > window_seconds else set())))


class CellKey(NamedTuple):
    level: int
    grouping: str
    project_id: str
    agent_name: str
    session_id: str
    provider: str
    model: str
    window_start: datetime
    src_topic: str
    src_partition: int


# CellKey(*values) without the keyword-handling `__new__` (one per cell and level on the hot path).
_new_cell_key = partial(tuple.__new__, CellKey)

CELL_COLUMNS: tuple[str, ...] = (*CellKey._fields, "covered_until", "generation", *WINDOW_TOTAL_FIELDS, "version")


@dataclass(frozen=True, slots=True)
class StoredCell:
    """What the store holds for a cell: how far it covers, at which price generation, and its totals."""

    covered_until: int
    generation: int
    totals: tuple


def cell_version(covered_until: int, generation: int, *, rebuilt: bool = False) -> int:
    """The replacing version of a cell row (see the module docstring for the order)."""
    if not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"price generation {generation} is out of range")
    return (covered_until << (_GENERATION_BITS + 1)) | (generation << 1) | int(rebuilt)


def level_start(start: datetime, level: int) -> datetime:
    """The start of the level-`level` window holding a window that starts at `start` (UTC)."""
    epoch = int(start.timestamp())
    return datetime.fromtimestamp(epoch - epoch % level, tz=timezone.utc)


# One message's contribution to a cell: (offset, totals in WINDOW_TOTAL_FIELDS order).
Contribution = tuple[int, list]


def contributions(window_cells: Iterable[tuple[tuple, list]], levels: tuple[int, ...]) -> dict[CellKey, list[Contribution]]:
    """Per-message window totals (`WindowAggregator.window_cells()`) spread over every level.

    Keys in: (grouping, project, agent, session, provider, model, start, source).
    Each cell's contributions come out in offset order.
    """
    out: dict[CellKey, list[Contribution]] = {}
    # Per window start: (level, start of the level's window holding it) for every level.
    level_starts: dict[datetime, tuple[tuple[int, datetime], ...]] = {}
    for (grouping, project, agent, session, provider, model, start, source), totals in window_cells:
        starts = level_starts.get(start)
        if starts is None:
            starts = level_starts[start] = tuple((level, level_start(start, level)) for level in levels)
        topic, partition, offset = source
        part = (offset, totals)
        for level, at in starts:
            key = _new_cell_key((level, grouping, project, agent, session, provider, model, at, topic, partition))
            parts = out.get(key)
            if parts is None:
                out[key] = [part]
            else:
                parts.append(part)
    for parts in out.values():
        parts.sort(key=itemgetter(0))
    return out


def chunk_ends(cells: Mapping[CellKey, list[Contribution]]) -> dict[tuple[str, int], int]:
    """Per (topic, partition): one past the last offset a chunk contributes (its coverage once written)."""
    ends: dict[tuple[str, int], int] = {}
    for key, parts in cells.items():
        source = (key.src_topic, key.src_partition)
        last = parts[-1][0] + 1
        if last > ends.get(source, 0):
            ends[source] = last
    return ends


def fold(
    cells: Mapping[CellKey, list[Contribution]],
    stored: Mapping[CellKey, StoredCell],
    *,
    generation: int = 0,
) -> list[tuple]:
    """The `CELL_COLUMNS` rows a chunk writes: stored totals plus the messages they do not cover yet.

    A cell whose stored row already covers every contributing message yields no row:
    the chunk is a replay there, and writing nothing is what keeps it exact.
    """
    ends = chunk_ends(cells)
    rows = []
    for key, parts in cells.items():
        before = stored.get(key)
        covered = before.covered_until if before is not None else 0
        new = [values for offset, values in parts if offset >= covered]
        if not new:
            continue
        if before is not None:
            new.append(before.totals)
        # Column by column in C: a cell gathers a contribution from every message of the chunk.
        totals = new[0] if len(new) == 1 else list(map(sum, zip(*new)))
        until = max(ends[(key.src_topic, key.src_partition)], covered)
        gen = max(generation, before.generation if before is not None else 0)
        rows.append((*key, until, gen, *totals, cell_version(until, gen)))
    return rows


def cell_totals(rows: Iterable[tuple]) -> dict[CellKey, tuple]:
    """The winning row's totals per cell, as the store keeps them (highest version wins)."""
    best: dict[CellKey, tuple] = {}
    n = len(CellKey._fields)
    for row in rows:
        key = CellKey(*row[:n])
        if key not in best or row[-1] >= best[key][-1]:
            best[key] = row
    return {key: tuple(row[n + 2 : n + 2 + len(WINDOW_TOTAL_FIELDS)]) for key, row in best.items()}
