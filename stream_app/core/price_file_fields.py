"""One key of a price-file entry: its checks, and where in the file a problem is.

`price_overrides` walks the `[[override]]` and `[[alias]]` entries; everything it asks of
a single value lives here: required and optional one-line strings, exact decimal prices,
`effective_from` dates, and the line number and "did you mean" hint that make each
problem fixable without reading the code. A check reports through a `Reporter` and
returns None instead of raising, so that one start-up lists every problem at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

# At most this many decimal places per million tokens, so every cost fits Decimal(38, 18).
MAX_PRICE_DECIMALS = 12

# report(key or None for the entry's header line, message)
Reporter = Callable[[str | None, str], None]


class EntryLines:
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


def entry_location(origin: str, line: int | None, kind: str, index: int, name: str | None = None) -> str:
    """`prices.toml line 12 ([[override]] #2 'acme')`: where a problem is, for its message."""
    entry = f"[[{kind}]] #{index + 1}" + (f" {name!r}" if name else "")
    return f"{origin} line {line} ({entry})" if line else f"{origin} ({entry})"


def required_text(item: dict[str, Any], key: str, report: Reporter, *, example: str) -> str | None:
    if key not in item:
        report(None, f"missing {key}: add e.g. {example}")
        return None
    return _text(item, key, report)


def optional_text(item: dict[str, Any], key: str, report: Reporter) -> str | None:
    return _text(item, key, report) if key in item else None


def _text(item: dict[str, Any], key: str, report: Reporter) -> str | None:
    value = item[key]
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        report(key, f"{key} must be a non-empty one-line string, e.g. {key} = \"...\"")
        return None
    return value.strip()


def decimal_price(item: dict[str, Any], key: str, report: Reporter) -> Decimal | None:
    """The price under `key` as an exact Decimal; a TOML float is refused (floats are not exact money)."""
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


def parse_effective_from(value: Any, report: Reporter) -> datetime | None:
    """A TOML date (00:00 UTC), an ISO string, or a datetime with offset, as UTC; None when absent."""
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


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'model'?)` for a misspelt key, or ""."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
