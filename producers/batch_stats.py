"""Statistics over a group of LLM calls (seed 002): one job, one phase, one tick.

    with BatchStats.collect("phase 2a") as stats:
        run_phase()
    log.info("%s", stats)   # phase 2a: 12 requests (12 ok, 0 failed), 48210 tokens ...

Built on the same in-process listeners as `UsageResponse`, so it works whether or not
events are published. Blocks nest: a call inside a phase inside a tick counts in both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from producers.collectors import listening
from schemas import UsageTrackingEvent


@dataclass
class BatchStats:
    """Totals over the calls of one batch; `total_tokens` = input + output tokens.

    `cached_tokens` are prompt-cache reads, `cache_write_tokens` prompt-cache writes;
    both are part of `input_tokens`, as `reasoning_tokens` are part of `output_tokens`.
    """

    name: str | None = None
    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    request_count: int = 0
    success_count: int = 0
    error_count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    @contextmanager
    def collect(cls, name: str | None = None) -> Iterator[BatchStats]:
        """Count every LLM call tracked inside the block into a new `BatchStats`."""
        stats = cls(name=name)
        with listening(stats):
            yield stats

    @contextmanager
    def collecting(self) -> Iterator[BatchStats]:
        """Count the calls tracked inside the block into these stats (they accumulate)."""
        with listening(self):
            yield self

    def add(self, event: UsageTrackingEvent) -> None:
        """Count one call."""
        usage = event.usage
        with self._lock:
            self.total_tokens += usage.input_tokens + usage.output_tokens
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.cached_tokens += usage.cache_read_tokens
            self.cache_write_tokens += usage.cache_write_tokens
            self.reasoning_tokens += usage.reasoning_tokens
            self.request_count += 1
            if event.error is None:
                self.success_count += 1
            else:
                self.error_count += 1

    def merge(self, other: BatchStats) -> BatchStats:
        """Add another batch's totals to these (e.g. phases into their tick); returns self."""
        counts = other.as_dict()
        with self._lock:
            for name, value in counts.items():
                if name != "name":
                    setattr(self, name, getattr(self, name) + value)
        return self

    def as_dict(self) -> dict[str, Any]:
        """The totals as a plain dict, for logs and JSON."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def __str__(self) -> str:
        counts = self.as_dict()
        label = f"{counts['name']}: " if counts["name"] else ""
        return (
            f"{label}{counts['request_count']} requests ({counts['success_count']} ok, "
            f"{counts['error_count']} failed), {counts['total_tokens']} tokens "
            f"({counts['input_tokens']} in, {counts['output_tokens']} out, "
            f"{counts['cached_tokens']} cached, {counts['cache_write_tokens']} cache writes, "
            f"{counts['reasoning_tokens']} reasoning)"
        )
