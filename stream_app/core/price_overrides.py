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
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from stream_app.core.model_names import normalize_provider
from stream_app.errors import ConfigurationError

PRICE_KEYS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok")
REQUIRED_PRICE_KEYS = ("input_mtok", "output_mtok")
OVERRIDE_KEYS = ("name", "provider", "model", "project", "effective_from", *PRICE_KEYS, "note")
ALIAS_KEYS = ("provider", "model", "catalog_provider", "catalog_model", "note")
MAX_PRICE_DECIMALS = 12
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
    lines = _EntryLines(text)
    problems: list[str] = []
    for key in document:
        if key not in ("override", "alias"):
            problems.append(
                f"{origin}: unknown top-level key {key!r}{_did_you_mean(key, ('override', 'alias'))}; "
                "the file holds [[override]] and [[alias]] entries"
            )
    overrides = _parse_entries(document.get("override", []), "override", origin, label, lines, problems)
    aliases = _parse_aliases(document.get("alias", []), origin, lines, problems)
    if problems:
        raise ConfigurationError(f"price file {origin} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))
    return PriceOverrides(tuple(overrides), tuple(aliases), origin)


class _EntryLines:
    """Line numbers of `[[override]]`/`[[alias]]` headers and of keys inside each entry."""

    _HEADER = re.compile(r"^\s*\[\[\s*(override|alias)\s*\]\]")
    _ANY_TABLE = re.compile(r"^\s*\[")

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._headers: dict[str, list[int]] = {"override": [], "alias": []}
        for number, line in enumerate(self._lines, start=1):
            match = self._HEADER.match(line)
            if match:
                self._headers[match.group(1)].append(number)

    def header(self, kind: str, index: int) -> int | None:
        found = self._headers[kind]
        return found[index] if index < len(found) else None

    def key(self, kind: str, index: int, key: str) -> int | None:
        start = self.header(kind, index)
        if start is None:
            return None
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start + 1, len(self._lines) + 1):
            line = self._lines[number - 1]
            if self._ANY_TABLE.match(line):
                break
            if pattern.match(line):
                return number
        return start


def _where(origin: str, line: int | None, kind: str, index: int, name: str | None = None) -> str:
    entry = f"[[{kind}]] #{index + 1}" + (f" {name!r}" if name else "")
    return f"{origin} line {line} ({entry})" if line else f"{origin} ({entry})"


def _parse_entries(
    raw: Any, kind: str, origin: str, label: str, lines: _EntryLines, problems: list[str]
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
            problems.append(f"{_where(origin, header_line, kind, index)}: must be a table of keys")
            continue
        given_name = item.get("name") if isinstance(item.get("name"), str) else None
        before = len(problems)

        def report(key: str | None, message: str) -> None:
            line = lines.key(kind, index, key) if key else header_line
            problems.append(f"{_where(origin, line, kind, index, given_name)}: {message}")

        for key in item:
            if key not in OVERRIDE_KEYS:
                report(key, f"unknown key {key!r}{_did_you_mean(key, OVERRIDE_KEYS)}; allowed: {', '.join(OVERRIDE_KEYS)}")
        provider = _required_text(item, "provider", report, example='provider = "openai"')
        model = _required_text(item, "model", report, example='model = "gpt-4o"')
        project = _optional_text(item, "project", report)
        effective_from = _effective_from(item.get("effective_from"), report)
        prices = {key: _price(item, key, report) for key in PRICE_KEYS}
        for key in REQUIRED_PRICE_KEYS:
            if key not in item:
                report(None, f"missing {key}: add e.g. {key} = \"2.50\" (USD per million tokens; \"0\" if free)")
        name = _optional_text(item, "name", report)
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


def _parse_aliases(raw: Any, origin: str, lines: _EntryLines, problems: list[str]) -> list[ModelAlias]:
    if not isinstance(raw, list):
        problems.append(f"{origin}: `alias` must be an array of tables: write each entry under [[alias]]")
        return []
    aliases: list[ModelAlias] = []
    seen: dict[tuple[str, str], int | None] = {}
    for index, item in enumerate(raw):
        header_line = lines.header("alias", index)
        if not isinstance(item, dict):
            problems.append(f"{_where(origin, header_line, 'alias', index)}: must be a table of keys")
            continue
        before = len(problems)

        def report(key: str | None, message: str) -> None:
            line = lines.key("alias", index, key) if key else header_line
            problems.append(f"{_where(origin, line, 'alias', index)}: {message}")

        for key in item:
            if key not in ALIAS_KEYS:
                report(key, f"unknown key {key!r}{_did_you_mean(key, ALIAS_KEYS)}; allowed: {', '.join(ALIAS_KEYS)}")
        provider = _required_text(item, "provider", report, example='provider = "azure"')
        model = _required_text(item, "model", report, example='model = "my-deployment"')
        catalog_model = _required_text(item, "catalog_model", report, example='catalog_model = "gpt-4o"')
        catalog_provider = _optional_text(item, "catalog_provider", report)
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
                where=_where(origin, header_line, "alias", index),
            )
        )
    return aliases


Reporter = Callable[[str | None, str], None]


def _required_text(item: dict[str, Any], key: str, report: Reporter, *, example: str) -> str | None:
    if key not in item:
        report(None, f"missing {key}: add e.g. {example}")
        return None
    return _text(item, key, report)


def _optional_text(item: dict[str, Any], key: str, report: Reporter) -> str | None:
    return _text(item, key, report) if key in item else None


def _text(item: dict[str, Any], key: str, report: Reporter) -> str | None:
    value = item[key]
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        report(key, f"{key} must be a non-empty one-line string, e.g. {key} = \"...\"")
        return None
    return value.strip()


def _price(item: dict[str, Any], key: str, report: Reporter) -> Decimal | None:
    if key not in item:
        return None
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        shown = repr(value) if not isinstance(value, float) else format(value)
        report(key, f"{key} = {shown} is a {type(value).__name__}; write the price as a decimal string: {key} = \"{shown}\"")
        return None
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        report(key, f"{key} = {value!r} is not a decimal number; write e.g. {key} = \"2.50\"")
        return None
    if not price.is_finite() or price < 0:
        report(key, f"{key} = {value!r} must be a finite price of 0 or more (USD per million tokens)")
        return None
    if -price.as_tuple().exponent > MAX_PRICE_DECIMALS:  # type: ignore[operator]
        report(
            key,
            f"{key} = {value!r} has more than {MAX_PRICE_DECIMALS} decimal places: costs would not fit "
            f"ClickHouse's Decimal(38, 18) exactly; round it to {MAX_PRICE_DECIMALS} places",
        )
        return None
    return price


def _effective_from(value: Any, report: Reporter) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value.strip()) == 10 else datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            report("effective_from", f"effective_from = {value!r} is not a date; write effective_from = 2026-01-01 or 2026-01-01T00:00:00Z")
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            report(
                "effective_from",
                f"effective_from = {value.isoformat()} has no UTC offset; add one: {value.isoformat()}Z (UTC) or +01:00",
            )
            return None
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    report("effective_from", "effective_from must be a date or a datetime with offset, e.g. effective_from = 2026-01-01")
    return None


def _default_name(provider: str, model: str, project: str | None, effective_from: datetime | None) -> str:
    name = f"{normalize_provider(provider)}/{model.strip().lower()}"
    if project:
        name += f"/{project}"
    if effective_from is not None:
        stamp = effective_from.date().isoformat() if effective_from.time() == time(0) else effective_from.isoformat().replace("+00:00", "Z")
        name += f"@{stamp}"
    return name


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
