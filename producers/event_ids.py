"""Event ids: time-ordered UUIDv7 (RFC 9562), strictly increasing within a process.

SPEC §1 recommends v7: ids drawn close in time sort close together, which keeps the
store's key look-ups (dedup by event_id) clustered instead of scattered over the index.

Layout: 48-bit Unix milliseconds, version 7, a 42-bit counter (12 bits of `rand_a` and
the top 30 of `rand_b`, RFC 9562 §6.2 method 1), variant 10, 32 random bits. The counter
starts at a random value (top bit clear, leaving room to count) each new millisecond and
counts up within it, so ids are monotonic even when thousands are drawn per millisecond;
a clock stepping back reuses the last millisecond rather than going backwards.

Why not `uuid.uuid4()`: it reads `os.urandom`, a system call that releases the GIL on the
caller's thread, and with a busy background sender the caller then waits for the GIL to
come back (up to the interpreter's 5 ms switch interval; measured as the SDK's p99.9).
The random bits here come from a private generator seeded from `os.urandom` once per
process (and again in a forked child), never from the global `random`, which services
seed with fixed values for reproducibility.
"""

from __future__ import annotations

import os
import random
import threading
import time

_COUNTER_BITS = 42
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62


class _Generator:
    """The process's id state; `next()` is safe from any thread."""

    def __init__(self) -> None:
        self._reseed()

    def _reseed(self) -> None:
        # Also a fresh lock: a forked child may have been copied while another thread held it.
        self._lock = threading.Lock()
        self._random = random.Random(os.urandom(32))
        self._last_ms = -1
        self._counter = 0

    def next(self) -> int:
        """The next id as a 128-bit integer."""
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            draw = self._random.getrandbits(73)
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = draw >> 32  # 41 random bits: the top counter bit starts clear
            else:
                self._counter += 1
                if self._counter > _COUNTER_MAX:  # 4 trillion ids in one millisecond: borrow the next
                    self._last_ms += 1
                    self._counter = draw >> 32
            ms, counter = self._last_ms, self._counter
        return (
            (ms & 0xFFFF_FFFF_FFFF) << 80
            | _VERSION_7
            | (counter >> 30) << 64
            | _VARIANT_RFC
            | (counter & 0x3FFF_FFFF) << 32
            | draw & 0xFFFF_FFFF
        )


_GENERATOR = _Generator()
if hasattr(os, "register_at_fork"):
    # A forked child must not replay its parent's random sequence.
    os.register_at_fork(after_in_child=_GENERATOR._reseed)


def new_event_id() -> str:
    """A fresh UUIDv7 string (lower-case, hyphenated), greater than any drawn before here."""
    hex_digits = f"{_GENERATOR.next():032x}"
    return (
        f"{hex_digits[:8]}-{hex_digits[8:12]}-{hex_digits[12:16]}-{hex_digits[16:20]}-{hex_digits[20:]}"
    )


def event_id_millis(event_id: str) -> int:
    """The Unix milliseconds a UUIDv7 event id was drawn at."""
    return int(event_id.replace("-", "")[:12], 16)
