"""A large insert in slices: each slice's Arrow table is built while the one before it is written.

Building an Arrow table is Python work that holds the GIL; ClickHouse writing it is C++
work that does not (chDB releases the GIL, a server works on its own). One after the
other, a chunk's events insert waited for both, ~5 µs an event each on the worker's
hot path; overlapped, it waits for little more than the larger. What goes to ClickHouse
before the events (the stored cells' read, the small tables) runs on the same writer
thread while the first slice is built, and whatever the caller has to compute next
(`then`) runs while the last slice is written.

Slices are contiguous, in the rows' order (log order), and cut only between rows of two
different messages: what a crash between two slices leaves stored is, per partition, every
billed event of a prefix of the chunk's messages, as a crash between two tables does (what
`stream_app/sink/cell_rebuild.py` relies on); the replay rewrites the same keys. One write
runs at a time on the client: the caller builds, the writer thread inserts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from stream_app.sink.arrow_rows import ArrowSchema

T = TypeVar("T")

# Two slices overlap the build with the write; more would only add parts to merge.
SLICES = 2
# Below this many rows a slice costs more in round trips and parts than it saves.
MIN_SLICE_ROWS = 2_000


def slices(
    rows: Sequence[tuple],
    count: int = SLICES,
    min_rows: int = MIN_SLICE_ROWS,
    same_message: Callable[[tuple, tuple], bool] | None = None,
) -> list[Sequence[tuple]]:
    """`rows` cut into at most `count` contiguous slices of near-equal size, none under `min_rows`
    (pure). A cut between two rows `same_message` says belong together moves past them."""
    if not rows:
        return []
    count = max(1, min(count, len(rows) // max(1, min_rows)))
    size, extra = divmod(len(rows), count)
    out, start = [], 0
    for i in range(count):
        end = max(start + size + (1 if i < extra else 0), start + 1) if i < count - 1 else len(rows)
        while same_message is not None and 0 < end < len(rows) and same_message(rows[end - 1], rows[end]):
            end += 1
        if end > start:
            out.append(rows[start:end])
        start = end
        if start >= len(rows):
            break
    return out


class SlicedInserter:
    """Runs a chunk's writes in order on a writer thread, building the next slice meanwhile."""

    def __init__(self) -> None:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-insert")

    def insert(
        self,
        schema: ArrowSchema,
        rows: Sequence[tuple],
        write: Callable[[Any], object],
        then: Callable[[list[Any]], T],
        same_message: Callable[[tuple, tuple], bool],
        before: Sequence[Callable[[], object]] = (),
    ) -> T:
        """Run `before` (reads and small writes), write `rows` (with `write(arrow_table)`),
        and return `then(results of before)`, run while the last slice is written.

        Everything on the writer thread runs in the order given, one at a time, and a step
        runs only if every step before it succeeded. Raises the first error; nothing is
        still running on the writer thread when this returns or raises.
        """
        last: Future | None = None
        try:
            earlier = []
            for step in before:
                last = self._writer.submit(_after, last, step)
                earlier.append(last)
            written: Future | None = None
            for part in slices(rows, same_message=same_message):
                table = schema.table(part)
                if written is not None:
                    written.result()  # at most two slices' tables held at once
                last = written = self._writer.submit(_after, last, write, table)
            result = then([f.result() for f in earlier])
            if last is not None:
                last.result()
            return result
        finally:
            if last is not None and not last.done():
                last.exception()  # wait for it: the caller's lock must outlive every write

    def submit(self, step: Callable[..., T], *args: Any) -> Future:
        """Run `step(*args)` on the writer thread, after whatever was submitted before it."""
        return self._writer.submit(step, *args)

    def close(self) -> None:
        self._writer.shutdown(wait=True)


def _after(previous: Future | None, step: Callable[..., object], *args: Any) -> object:
    """`step(*args)` once `previous` succeeded (its error, if it failed: nothing runs after a failure)."""
    if previous is not None:
        previous.result()  # done already: the writer runs one step at a time, in order
    return step(*args)
