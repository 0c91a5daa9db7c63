"""The local price file: negotiated, private or fine-tuned prices, and explicit model aliases.

A TOML file (read with the standard library's `tomllib`), named by the setting
`USAGE_PRICE_OVERRIDES_FILE`, validated when a worker or command starts: every problem is
reported at once, each with its line, the entry, and the fix.

    # A negotiated gpt-4o price for every project, from 2026-01-01 on.
    [[override]]
    name = "acme-contract-gpt-4o"        # optional, unique; rows say "override:FILE#NAME"
    provider = "openai"
    model = "gpt-4o"                     # the model name as events carry it, or the catalog's id
    effective_from = 2026-01-01          # optional; a TOML date (00:00 UTC) or a datetime with offset
    input_mtok = "2.00"                  # USD per million uncached input tokens
    cache_read_mtok = "1.00"             # optional
    cache_write_mtok = "2.50"            # optional
    output_mtok = "8.00"                 # USD per million output tokens (reasoning included)

    # Only for one project (wins over entries without `project`).
    [[override]]
    provider = "openai"
    model = "ft:gpt-4o-mini:acme:support-v3"
    project = "acme-support"
    input_mtok = "0.30"
    output_mtok = "1.20"

    # An Azure deployment name, priced as the catalog prices gpt-4o on Azure.
    [[alias]]
    provider = "azure"
    model = "prod-gpt4o-eu"
    catalog_model = "gpt-4o"             # catalog_provider = "..." defaults to `provider`

Prices are decimal strings (or integers): a TOML float like 2.5 is refused, because floats
are not exact money. At most 12 decimal places per million tokens, so every cost fits
ClickHouse's Decimal(38, 18) exactly.

Entries for the same provider, model and project form a history: at an event's
timestamp, the one with the latest `effective_from` at or before it is in force. Before
the first one, the catalog prices the event as if there were no override.

This module turns the file into validated entries, once, at start; the checks of single
values are in `price_file_fields`, and the run-time question "which entry is in force
now" is answered by `override_schedule`.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from stream_app.core.model_names import normalize_provider
from stream_app.core.price_file_fields import (
    EntryLines,
    decimal_price,
    did_you_mean,
    entry_location,
    optional_text,
    parse_effective_from,
    required_text,
)
from stream_app.errors import ConfigurationError

PRICE_KEYS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok")
REQUIRED_PRICE_KEYS = ("input_mtok", "output_mtok")
OVERRIDE_KEYS = ("name", "provider", "model", "project", "effective_from", *PRICE_KEYS, "note")
ALIAS_KEYS = ("provider", "model", "catalog_provider", "catalog_model", "note")
BEGINNING = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PriceOverride:
    """One `[[override]]` entry: a price per million tokens for a provider and model."""

    name: str
    provider: str  # normalized: trimmed, lower-case, provider aliases applied
    model: str  # lower-case
    project: str | None
    effective_from: datetime | None  # None: since always
    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None
    cache_write_mtok: Decimal | None
    source: str  # what rows say: "override:FILE#NAME"
    line: int | None = None

    @property
    def starts(self) -> datetime:
        return self.effective_from or BEGINNING


@dataclass(frozen=True)
class ModelAlias:
    """One `[[alias]]` entry: price this name as a catalog model."""

    provider: str
    model: str
    catalog_provider: str
    catalog_model: str
    where: str  # "prices.toml line 12", for error messages


@dataclass(frozen=True)
class PriceOverrides:
    """Everything a price file says; empty when no file is configured."""

    overrides: tuple[PriceOverride, ...] = ()
    aliases: tuple[ModelAlias, ...] = ()
    origin: str = ""  # the file, for messages
    digest: str = ""  # sha256 of the file's bytes: tells whether two processes read the same file

    @property
    def empty(self) -> bool:
        return not self.overrides and not self.aliases


def load_price_overrides(path: Path | str | None) -> PriceOverrides:
    """Read and validate the price file; no path means no overrides."""
    if path is None or str(path) == "":
        return PriceOverrides()
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"USAGE_PRICE_OVERRIDES_FILE={str(path)!r} cannot be read ({exc.strerror or exc}); "
            "fix the path or unset the variable"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"price file {path}: not UTF-8 text ({exc}); save it as UTF-8") from None
    overrides = parse_price_overrides(text, origin=str(path), label=path.name)
    return PriceOverrides(overrides.overrides, overrides.aliases, str(path), hashlib.sha256(data).hexdigest())


def parse_price_overrides(text: str, *, origin: str = "prices.toml", label: str | None = None) -> PriceOverrides:
    """Validate the text of a price file; raises ConfigurationError listing every problem."""
    label = label or Path(origin).name
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"price file {origin} is not valid TOML: {exc}") from None
    lines = EntryLines(text)
    problems: list[str] = []
    for key in document:
        if key not in ("override", "alias"):
            problems.append(
                f"{origin}: unknown top-level key {key!r}{did_you_mean(key, ('override', 'alias'))}; "
                "the file holds [[override]] and [[alias]] entries"
            )
    overrides = _parse_entries(document.get("override", []), "override", origin, label, lines, problems)
    aliases = _parse_aliases(document.get("alias", []), origin, lines, problems)
    if problems:
        raise ConfigurationError(f"price file {origin} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))
    return PriceOverrides(tuple(overrides), tuple(aliases), origin)


def _parse_entries(
    raw: Any, kind: str, origin: str, label: str, lines: EntryLines, problems: list[str]
) -> list[PriceOverride]:
    if not isinstance(raw, list):
        problems.append(f"{origin}: `{kind}` must be an array of tables: write each entry under [[{kind}]]")
        return []
    entries: list[PriceOverride] = []
    names: dict[str, int | None] = {}
    keys: dict[tuple[str, str, str | None, datetime], int | None] = {}
    for index, item in enumerate(raw):
        header_line = lines.header(kind, index)
        if not isinstance(item, dict):
            problems.append(f"{entry_location(origin, header_line, kind, index)}: must be a table of keys")
            continue
        given_name = item.get("name") if isinstance(item.get("name"), str) else None
        before = len(problems)

        def report(key: str | None, message: str) -> None:
            line = lines.key(kind, index, key) if key else header_line
            problems.append(f"{entry_location(origin, line, kind, index, given_name)}: {message}")

        for key in item:
            if key not in OVERRIDE_KEYS:
                report(key, f"unknown key {key!r}{did_you_mean(key, OVERRIDE_KEYS)}; allowed: {', '.join(OVERRIDE_KEYS)}")
        provider = required_text(item, "provider", report, example='provider = "openai"')
        model = required_text(item, "model", report, example='model = "gpt-4o"')
        project = optional_text(item, "project", report)
        effective_from = parse_effective_from(item.get("effective_from"), report)
        prices = {key: decimal_price(item, key, report) for key in PRICE_KEYS}
        for key in REQUIRED_PRICE_KEYS:
            if key not in item:
                report(None, f"missing {key}: add e.g. {key} = \"2.50\" (USD per million tokens; \"0\" if free)")
        name = optional_text(item, "name", report)
        if len(problems) > before or provider is None or model is None:
            continue
        name = name or _default_name(provider, model, project, effective_from)
        entry = PriceOverride(
            name=name,
            provider=normalize_provider(provider),
            model=model.strip().lower(),
            project=project,
            effective_from=effective_from,
            input_mtok=prices["input_mtok"] or Decimal(0),
            output_mtok=prices["output_mtok"] or Decimal(0),
            cache_read_mtok=prices["cache_read_mtok"],
            cache_write_mtok=prices["cache_write_mtok"],
            source=f"override:{label}#{name}",
            line=header_line,
        )
        if name in names:
            report("name", f"name {name!r} is already used by the entry at line {names[name]}; names must be unique")
            continue
        identity = (entry.provider, entry.model, entry.project, entry.starts)
        if identity in keys:
            report(
                None,
                f"same provider, model, project and effective_from as the entry at line {keys[identity]}; "
                "remove one, or give one a different effective_from",
            )
            continue
        names[name] = header_line
        keys[identity] = header_line
        entries.append(entry)
    return entries


def _parse_aliases(raw: Any, origin: str, lines: EntryLines, problems: list[str]) -> list[ModelAlias]:
    if not isinstance(raw, list):
        problems.append(f"{origin}: `alias` must be an array of tables: write each entry under [[alias]]")
        return []
    aliases: list[ModelAlias] = []
    seen: dict[tuple[str, str], int | None] = {}
    for index, item in enumerate(raw):
        header_line = lines.header("alias", index)
        if not isinstance(item, dict):
            problems.append(f"{entry_location(origin, header_line, 'alias', index)}: must be a table of keys")
            continue
        before = len(problems)

        def report(key: str | None, message: str) -> None:
            line = lines.key("alias", index, key) if key else header_line
            problems.append(f"{entry_location(origin, line, 'alias', index)}: {message}")

        for key in item:
            if key not in ALIAS_KEYS:
                report(key, f"unknown key {key!r}{did_you_mean(key, ALIAS_KEYS)}; allowed: {', '.join(ALIAS_KEYS)}")
        provider = required_text(item, "provider", report, example='provider = "azure"')
        model = required_text(item, "model", report, example='model = "my-deployment"')
        catalog_model = required_text(item, "catalog_model", report, example='catalog_model = "gpt-4o"')
        catalog_provider = optional_text(item, "catalog_provider", report)
        if len(problems) > before or provider is None or model is None or catalog_model is None:
            continue
        key = (normalize_provider(provider), model.strip().lower())
        if key in seen:
            report(None, f"{provider}/{model} is already aliased at line {seen[key]}; keep one")
            continue
        seen[key] = header_line
        aliases.append(
            ModelAlias(
                provider=key[0],
                model=key[1],
                catalog_provider=normalize_provider(catalog_provider or provider),
                catalog_model=catalog_model.strip(),
                where=entry_location(origin, header_line, "alias", index),
            )
        )
    return aliases


def _default_name(provider: str, model: str, project: str | None, effective_from: datetime | None) -> str:
    name = f"{normalize_provider(provider)}/{model.strip().lower()}"
    if project:
        name += f"/{project}"
    if effective_from is not None:
        stamp = effective_from.date().isoformat() if effective_from.time() == time(0) else effective_from.isoformat().replace("+00:00", "Z")
        name += f"@{stamp}"
    return name
