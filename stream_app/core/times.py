"""Reading the times people type for `--since` / `--until`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An RFC 3339 time (naive means UTC), a date, or an age like `15m`, `2h`, `7d` (before now)."""
    text = text.strip()
    if text and text[-1] in _UNITS and text[:-1].isdigit():
        base = now or datetime.now(timezone.utc)
        return base - timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: use 2026-11-22T10:00:00Z, 2026-11-22 or an age like 2h") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
