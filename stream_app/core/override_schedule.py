"""Which `[[override]]` is in force for an event: the run-time side of the price file.

Kept apart from `price_overrides` (which reads and validates the file once, at start)
because this is what the pricer asks on every event: given a provider and model, a
project and a timestamp, the entry whose `effective_from` is the latest at or before
that time, the project's own history winning over the general one.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from datetime import datetime

from stream_app.core.price_overrides import PriceOverride


class OverrideSchedule:
    """The overrides of one (provider, model), per project, in effective order."""

    def __init__(self, entries: Iterable[PriceOverride]) -> None:
        by_project: dict[str | None, list[PriceOverride]] = {}
        for entry in entries:
            by_project.setdefault(entry.project, []).append(entry)
        self._history: dict[str | None, tuple[list[datetime], list[PriceOverride]]] = {}
        for project, items in by_project.items():
            items.sort(key=lambda e: e.starts)
            self._history[project] = ([e.starts for e in items], items)

    def in_force(self, project_id: str | None, at: datetime) -> PriceOverride | None:
        """The entry in force at `at`: the project's own history first, then the general one."""
        for key in (project_id, None) if project_id is not None else (None,):
            history = self._history.get(key)
            if history is not None:
                i = bisect.bisect_right(history[0], at) - 1
                if i >= 0:
                    return history[1][i]
        return None


def index_overrides(
    overrides: Iterable[PriceOverride], provider_key: Callable[[str], str]
) -> dict[tuple[str, str], OverrideSchedule]:
    """Schedules keyed by (provider as `provider_key` canonicalizes it, lower-case model)."""
    grouped: dict[tuple[str, str], list[PriceOverride]] = {}
    for entry in overrides:
        grouped.setdefault((provider_key(entry.provider), entry.model), []).append(entry)
    return {key: OverrideSchedule(entries) for key, entries in grouped.items()}
