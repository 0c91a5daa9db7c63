"""Which cells a range reads: whole days, whole hours, single windows, each window exactly once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core.window_cells import cell_levels
from stream_app.sink.levels import level_pieces, pieces_condition

DAY = 86_400


def covered_windows(pieces, base: int, lo: int, hi: int) -> list[int]:
    """Every base window start the pieces read, within [lo, hi) for unbounded ends."""
    out = []
    for level, start, end in pieces:
        first = lo if start is None else start
        last = hi if end is None else end
        assert first % level == 0 and last % level == 0, (level, first, last)
        out.extend(range(first, last, base))
    return out


@settings(max_examples=300, deadline=None)
@given(
    window=st.sampled_from([60, 300, 900, 3600, 86_400]),
    since=st.integers(0, 40 * DAY),
    span=st.integers(1, 40 * DAY),
    bucket_windows=st.one_of(st.none(), st.sampled_from([1, 2, 5, 12, 60, 1440])),
)
def test_pieces_tile_the_range_exactly_once(window, since, span, bucket_windows):
    since = since // window * window
    until = since + max(window, span // window * window)
    bucket = None if bucket_windows is None else bucket_windows * window
    levels = cell_levels(window)

    pieces = level_pieces(since, until, levels, bucket)

    windows = covered_windows(pieces, window, since, until)
    assert sorted(windows) == list(range(since, until, window))  # every window once, nothing outside
    for level, start, _end in pieces:
        assert level in levels
        if bucket is not None:
            assert bucket % level == 0  # a cell never straddles two buckets
    assert len(pieces) <= 2 * len(levels) - 1


def test_all_time_reads_day_cells_only():
    assert level_pieces(None, None, (60, 3600, DAY)) == [(DAY, None, None)]


def test_open_ended_ranges_use_the_coarsest_level_on_the_open_side():
    assert level_pieces(DAY + 60, None, (60, 3600, DAY)) == [
        (60, DAY + 60, DAY + 3600), (3600, DAY + 3600, 2 * DAY), (DAY, 2 * DAY, None),
    ]
    assert level_pieces(None, DAY + 120, (60, 3600, DAY)) == [(DAY, None, DAY), (60, DAY, DAY + 120)]


def test_the_condition_names_each_piece():
    assert pieces_condition([(60, 0, 120)]) == "level = 60 AND window_start >= toDateTime(0, 'UTC') AND window_start < toDateTime(120, 'UTC')"
    assert pieces_condition([(DAY, None, DAY), (60, DAY, None)]) == (
        "((level = 86400 AND window_start < toDateTime(86400, 'UTC')) OR (level = 60 AND window_start >= toDateTime(86400, 'UTC')))"
    )
