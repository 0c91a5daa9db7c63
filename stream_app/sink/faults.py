"""Fault injection at the sink's client boundary, for tests and outage drills.

Enabled only by `USAGE_SINK_FAULT_PLAN` (empty in production). It wraps the real
clickhouse-connect client, so everything but the injected failure is the real engine.

Plan syntax, comma-separated:
- `fail_inserts=N`: the next N inserts raise before writing anything.
- `fail_after_insert=N`: the next N inserts write, then raise (a lost acknowledgement).
- `outage_seconds=S`: every statement fails for S seconds after the first insert.
- `crash_after=TABLE`: the process dies (exit 70, no clean-up, nothing committed) right
  after its first insert into TABLE: a crash between two writes of a chunk.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from stream_app.errors import ConfigurationError


class InjectedFault(ConnectionError):
    """A failure the fault plan caused on purpose."""


@dataclass
class FaultPlan:
    fail_inserts: int = 0
    fail_after_insert: int = 0
    outage_seconds: float = 0.0
    crash_after: str = ""

    @property
    def active(self) -> bool:
        return bool(self.fail_inserts or self.fail_after_insert or self.outage_seconds or self.crash_after)


# What a crash looks like from outside: the process is gone, mid-chunk, without a word.
CRASH_EXIT_CODE = 70
CRASHABLE_TABLES = ("usage_rejections", "usage_tool_windows", "usage_events", "usage_window_cells")


def parse_fault_plan(text: str) -> FaultPlan:
    """Parse `USAGE_SINK_FAULT_PLAN`; an unknown word names the setting and the syntax."""
    plan = FaultPlan()
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            if name == "fail_inserts":
                plan.fail_inserts = int(value)
            elif name == "fail_after_insert":
                plan.fail_after_insert = int(value)
            elif name == "outage_seconds":
                plan.outage_seconds = float(value)
            elif name == "crash_after" and value in CRASHABLE_TABLES:
                plan.crash_after = value
            else:
                raise ValueError(name)
            if min(plan.fail_inserts, plan.fail_after_insert, plan.outage_seconds) < 0:
                raise ValueError(part)
        except ValueError:
            raise ConfigurationError(
                f"USAGE_SINK_FAULT_PLAN: cannot read {part!r}; use e.g. "
                "'fail_inserts=3,fail_after_insert=2,outage_seconds=30' or 'crash_after=usage_window_cells' "
                f"(tables: {', '.join(CRASHABLE_TABLES)})"
            ) from None
    return plan


class FaultyClient:
    """A clickhouse-connect client that fails as the plan says, and otherwise passes through."""

    def __init__(self, inner: Any, plan: FaultPlan) -> None:
        self._inner = inner
        self._plan = plan
        self._outage_until: float | None = None
        self._lock = threading.Lock()

    def _in_outage(self) -> bool:
        return self._outage_until is not None and time.monotonic() < self._outage_until

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        return self._write(self._inner.insert, *args, **kwargs)

    def insert_arrow(self, *args: Any, **kwargs: Any) -> Any:
        return self._write(self._inner.insert_arrow, *args, **kwargs)

    def _write(self, insert: Any, *args: Any, **kwargs: Any) -> Any:
        table = args[0] if args else kwargs.get("table")
        if str(table).startswith("_keys_"):
            return insert(*args, **kwargs)  # a look-up's keys, not a chunk write
        with self._lock:
            if self._plan.outage_seconds and self._outage_until is None:
                self._outage_until = time.monotonic() + self._plan.outage_seconds
            if self._in_outage():
                raise InjectedFault("injected ClickHouse outage")
            if self._plan.fail_inserts > 0:
                self._plan.fail_inserts -= 1
                raise InjectedFault("injected insert failure (nothing written)")
            fail_after = self._plan.fail_after_insert > 0
            if fail_after:
                self._plan.fail_after_insert -= 1
        result = insert(*args, **kwargs)
        if self._plan.crash_after and table == self._plan.crash_after:
            os._exit(CRASH_EXIT_CODE)
        if fail_after:
            raise InjectedFault("injected failure after the insert was written (lost acknowledgement)")
        return result

    def command(self, *args: Any, **kwargs: Any) -> Any:
        if self._in_outage():
            raise InjectedFault("injected ClickHouse outage")
        return self._inner.command(*args, **kwargs)

    def query(self, *args: Any, **kwargs: Any) -> Any:
        if self._in_outage():
            raise InjectedFault("injected ClickHouse outage")
        return self._inner.query(*args, **kwargs)

    def raw_query(self, *args: Any, **kwargs: Any) -> Any:
        if self._in_outage():
            raise InjectedFault("injected ClickHouse outage")
        return self._inner.raw_query(*args, **kwargs)

    def close(self) -> None:
        self._inner.close()
