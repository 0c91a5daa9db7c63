"""What a (provider, model) pair as events carry it means to the catalog and the price file.

Resolving a name is the slow, cached half of pricing: ask the bundled genai-prices
catalog for the name as it arrives, else an `[[alias]]`, else each rewrite of
`model_names` in turn; then collect the `[[override]]` schedules that may apply, by the
name as it arrived or by the catalog model it resolved to. The result (`Resolution`)
depends only on the two names, so it is computed once per pair; what it costs at a time
and for some tokens is `pricing`'s business.

Aliases are checked here when the resolver is built, so a worker with a price file that
names a model the catalog does not have fails at start with every such alias listed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from genai_prices import __version__ as CATALOG_VERSION
from genai_prices.data_snapshot import find_provider_by_id, get_snapshot

from stream_app.core.model_names import normalize_provider, rewritten_names
from stream_app.core.override_schedule import OverrideSchedule, index_overrides
from stream_app.core.price_overrides import PriceOverrides
from stream_app.errors import ConfigurationError

CATALOG_SOURCE = f"genai-prices {CATALOG_VERSION}"
# How many (provider, model) resolutions to keep before starting over (bounded memory).
_MAX_RESOLUTIONS = 100_000


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a (provider, model) pair as events carry it means to the catalog and the price file."""

    provider_id: str  # the catalog's provider id, or the normalized name when it has none
    provider: Any | None  # catalog Provider the model was found under
    model: Any | None  # catalog ModelInfo, None when the catalog has no price
    note: str  # how the name was matched ("" when as it arrived, or when it was not)
    miss: str  # why the catalog has no price ("" when it has one)
    schedules: tuple[OverrideSchedule, ...]  # override histories that may apply, most specific first


class ModelResolver:
    """Resolves provider and model names against the bundled catalog and a price file; caches each pair."""

    def __init__(self, overrides: PriceOverrides) -> None:
        self._snapshot = get_snapshot()
        self.overrides = overrides
        self._resolutions: dict[tuple[str, str], Resolution] = {}
        self._override_index = index_overrides(overrides.overrides, self.canonical_provider)
        self._aliases = self._check_aliases()

    def resolve(self, provider: str, model: str) -> Resolution:
        """How a provider and model name are understood (cached)."""
        return self._resolutions.get((provider, model)) or self._remember(provider, model)

    def canonical_provider(self, name: str) -> str:
        """The catalog's id for a provider name, or the normalized name if the catalog has none."""
        normalized = normalize_provider(name)
        found = find_provider_by_id(self._snapshot.providers, normalized)
        return found.id if found is not None else normalized

    # --- internals -------------------------------------------------------------------------

    def _remember(self, provider: str, model: str) -> Resolution:
        if len(self._resolutions) >= _MAX_RESOLUTIONS:
            self._resolutions.clear()
        found = self._resolve(provider, model)
        self._resolutions[(provider, model)] = found
        return found

    def _resolve(self, provider: str, model: str) -> Resolution:
        normalized = normalize_provider(provider)
        catalog_provider = find_provider_by_id(self._snapshot.providers, normalized)
        provider_id = catalog_provider.id if catalog_provider is not None else normalized
        name = model.strip().lower()
        names = [name]
        match: tuple[Any, Any] | None = None
        note = miss = ""
        alias = self._aliases.get((provider_id, name))
        if alias is not None:
            match, note = alias
        else:
            match = self._lookup(normalized, name)
            if match is None:
                for rules, candidate in rewritten_names(provider_id, name, self._same_provider(catalog_provider)):
                    names.append(candidate)
                    match = self._lookup(normalized, candidate)
                    if match is not None:
                        note = f"matched as {candidate!r} by name rule {rules}"
                        break
            if match is None:
                miss = (
                    f"the catalog ({CATALOG_SOURCE}) has no model {model!r} for provider {provider_id!r}"
                    if catalog_provider is not None or normalized == "litellm"
                    else f"the catalog ({CATALOG_SOURCE}) has no provider {provider!r}"
                )
        if match is not None:
            names.append(match[1].id.lower())
        schedules: list[OverrideSchedule] = []
        for candidate in names:
            schedule = self._override_index.get((provider_id, candidate))
            if schedule is not None and all(schedule is not s for s in schedules):
                schedules.append(schedule)
        if match is None:
            return Resolution(provider_id, None, None, "", miss, tuple(schedules))
        return Resolution(provider_id, match[0], match[1], note, "", tuple(schedules))

    def _lookup(self, provider: str, model_ref: str) -> tuple[Any, Any] | None:
        try:
            return self._snapshot.find_provider_model(model_ref, None, provider, None)
        except LookupError:
            return None

    def _same_provider(self, catalog_provider: Any | None):  # noqa: ANN202 - a small predicate
        def same(prefix: str) -> bool:
            if catalog_provider is None:
                return False
            return find_provider_by_id(self._snapshot.providers, normalize_provider(prefix)) is catalog_provider

        return same

    def _check_aliases(self) -> dict[tuple[str, str], tuple[tuple[Any, Any], str]]:
        """Every alias must name a model the catalog has; checked once, at start."""
        checked: dict[tuple[str, str], tuple[tuple[Any, Any], str]] = {}
        problems = []
        for alias in self.overrides.aliases:
            match = self._lookup(alias.catalog_provider, alias.catalog_model)
            if match is None:
                problems.append(
                    f"{alias.where}: the catalog ({CATALOG_SOURCE}) has no model {alias.catalog_model!r} for "
                    f"provider {alias.catalog_provider!r}{self._suggestion(alias.catalog_provider, alias.catalog_model)}; "
                    "fix catalog_model (or catalog_provider), or price the name with an [[override]] instead"
                )
                continue
            key = (self.canonical_provider(alias.provider), alias.model)
            checked[key] = (match, f"alias {alias.provider}/{alias.model} -> {match[0].id}/{match[1].id} ({alias.where})")
        if problems:
            raise ConfigurationError(
                f"price file {self.overrides.origin} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
            )
        return checked

    def _suggestion(self, provider: str, model: str) -> str:
        found = find_provider_by_id(self._snapshot.providers, provider)
        if found is None:
            return " (no such provider in the catalog)"
        # Azure, Google and others also price models of the providers they fall back to.
        providers = [found, *(p for p in self._snapshot.providers if p.id in (found.fallback_model_providers or ()))]
        close = difflib.get_close_matches(model.lower(), sorted({m.id.lower() for p in providers for m in p.models}), n=3)
        return f" (close: {', '.join(close)})" if close else ""
