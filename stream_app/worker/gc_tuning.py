"""Garbage collection tuned for a worker that allocates millions of short-lived objects.

A chunk of 25,000 events makes a few hundred thousand small objects (decoded events,
keys, rows), almost all freed by reference counting the moment the chunk is written.
With CPython's default thresholds the cyclic collector still runs every 700
allocations and, in its older generations, walks every long-lived object the worker
holds (the price catalog, Faust, aiokafka): measured on the worker's own chunk path,
a quarter of its time. After start-up the long-lived objects are frozen (the collector
stops looking at them) and the youngest generation collects every 50,000 allocations:
cycles are still collected, just not 70 times per chunk.

Even so, each of those collections walks the chunk's live objects (its decoded events
and rows): ~2 µs an event, 8% of a chunk (README "Performance"). So while a chunk is
worked on, the collector is paused (`collector_paused`): reference counting frees what
the chunk made, and the few cycles wait for the collection that follows the chunk. It
runs again during any long wait inside a chunk (`collector_running`: retrying ClickHouse),
so an outage never lets cycles pile up.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLDS = (20, 100)


def tune_for_throughput() -> None:
    """Freeze what start-up built and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for a burst of work, on again after it (if it was on)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def collector_running() -> Iterator[None]:
    """Inside a paused burst, the collector on again for a while (a long wait)."""
    if gc.isenabled():
        yield
        return
    gc.enable()
    try:
        yield
    finally:
        gc.disable()
