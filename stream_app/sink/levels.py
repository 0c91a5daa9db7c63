"""Which window cells a time range reads: whole days, whole hours, single windows (pure).

Cells are kept at several levels (stream_app/core/window_cells.py). A range of base
windows is cut into the fewest cells that tile it exactly: the whole days inside it at
the day level, the whole hours left at its ends at the hour level, the single windows
left after that at the window level. Every base window falls in exactly one piece, so
summing the pieces is exact; "all time" is a read of day cells only. With `--every`,
only levels that divide the bucket are used, so no cell straddles two buckets.
"""

from __future__ import annotations

# A piece: (level in seconds, first window start, end) as epoch seconds; None = unbounded.
Piece = tuple[int, int | None, int | None]


def level_pieces(since: int | None, until: int | None, levels: tuple[int, ...], bucket: int | None = None) -> list[Piece]:
    """Tile [since, until) (aligned to the smallest level) with cells of the coarsest usable levels."""
    usable = sorted((lv for lv in levels if bucket is None or bucket % lv == 0), reverse=True)
    if not usable:
        raise ValueError(f"no cell level divides a {bucket} s bucket")
    return _cover(since, until, usable)


def _cover(lo: int | None, hi: int | None, levels: list[int]) -> list[Piece]:
    if lo is not None and hi is not None and lo >= hi:
        return []
    level, finer = levels[0], levels[1:]
    if not finer:
        return [(level, lo, hi)]
    start = None if lo is None else -(-lo // level) * level
    end = None if hi is None else hi // level * level
    if start is not None and end is not None and start >= end:
        return _cover(lo, hi, finer)
    head = [] if lo is None else _cover(lo, start, finer)
    tail = [] if hi is None else _cover(end, hi, finer)
    return [*head, (level, start, end), *tail]


def pieces_condition(pieces: list[Piece]) -> str:
    """A WHERE condition on `level` and `window_start` selecting exactly these pieces."""
    parts = []
    for level, lo, hi in pieces:
        terms = [f"level = {int(level)}"]
        if lo is not None:
            terms.append(f"window_start >= toDateTime({int(lo)}, 'UTC')")
        if hi is not None:
            terms.append(f"window_start < toDateTime({int(hi)}, 'UTC')")
        parts.append(" AND ".join(terms))
    if len(parts) == 1:
        return parts[0]
    return "(" + " OR ".join(f"({part})" for part in parts) + ")"
