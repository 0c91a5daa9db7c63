"""Test data: realistic usage events, with any field overridden or left out.

`make_event_dict(**overrides)` gives the wire form (JSON-ready: `json.dumps` works on it),
`make_event(**overrides)` the validated model. Each call gets a fresh uuid4 `event_id` and
`timestamp` = now (UTC) unless overridden.

    make_event(project_id="proj-b", usage={"cache_read_tokens": 100})   # merged into usage
    make_event_dict(usage={"input_token": 5})                           # misspelled: kept as is
    make_event_dict(session_id=OMIT, usage={"output_tokens": OMIT})     # key left out
    make_event_dict(timestamp=datetime(2025, 1, 1, tzinfo=UTC))         # datetimes -> RFC 3339
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas import UsageTrackingEvent


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


# Pass as an override value to leave the key out (e.g. to test a missing required field).
OMIT: Any = _Omit()


def default_usage() -> dict[str, Any]:
    """Token counts of a typical cached chat call; every rule of SPEC §1 holds."""
    return {
        "input_tokens": 1200,
        "output_tokens": 350,
        "cache_read_tokens": 800,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 1550,
    }


def default_event_dict() -> dict[str, Any]:
    """A complete, valid event in wire form, with a fresh event_id and timestamp."""
    return {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "source": "support-api",
        "project_id": "proj-acme",
        "agent_name": "triage-agent",
        "session_id": f"sess-{uuid.uuid4().hex[:12]}",
        "handoff_chain": ["router-agent", "triage-agent"],
        "operation": "classify_ticket",
        "method": "generate",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "usage": default_usage(),
        "tool_calls": [{"name": "search_kb", "duration_ms": 41.5, "error": None}],
        "finish_reason": "stop",
        "duration_ms": 812.0,
        "error": None,
        "provider_cost": None,
        "provider_metadata": {},
        "context": {"region": "eu-west-1"},
    }


def make_event_dict(**overrides: Any) -> dict[str, Any]:
    """A valid event's wire dict with `overrides` applied.

    `usage={...}` is merged into the default usage; overriding `input_tokens` or
    `output_tokens` drops the default `total_tokens` unless one is given. Any other key
    replaces the default; unknown keys are added as is, to test rejection. `OMIT` removes
    a key, at top level or inside `usage`.
    """
    event = default_event_dict()
    usage_overrides = overrides.pop("usage", None)
    if usage_overrides is OMIT:
        del event["usage"]
    elif usage_overrides is not None:
        event["usage"] = _merge_usage(event["usage"], usage_overrides)
    _apply(event, overrides)
    return _to_json_ready(event)


def make_event(**overrides: Any) -> UsageTrackingEvent:
    """A validated `UsageTrackingEvent`; same overrides as `make_event_dict`."""
    return UsageTrackingEvent.model_validate_json(json.dumps(make_event_dict(**overrides)))


def _merge_usage(usage: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(usage)
    # A default total would contradict new input/output counts; leave it out unless given.
    if {"input_tokens", "output_tokens"} & overrides.keys() and "total_tokens" not in overrides:
        del merged["total_tokens"]
    _apply(merged, overrides)
    return merged


def _apply(target: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if value is OMIT:
            target.pop(key, None)
        else:
            target[key] = value


def _to_json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _to_json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_ready(item) for item in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


# --- many events with varied usage, for end-to-end totals -------------------------------

PROJECTS = ("proj-alpha", "proj-beta", "proj-gamma")
AGENTS = ("planner", "coder", "reviewer", "summarizer")
MODELS = (
    ("openai", "gpt-4o", False, False),
    ("openai", "o4-mini", True, False),
    ("anthropic", "claude-sonnet-4-5", True, True),
    ("anthropic", "claude-haiku-4-5", False, True),
    ("google", "gemini-2.5-flash", True, False),
    ("google", "gemini-2.5-pro", True, False),
    ("openai", "ft:unknown-to-the-catalog", False, False),
)


def varied_events(
    count: int, seed: int = 1, *, now: datetime | None = None, spread_seconds: float = 180.0
) -> list[UsageTrackingEvent]:
    """Events with varied usage over 3 projects, 4 agents, 8 sessions, 3 providers.

    Timestamps fall in the `spread_seconds` before `now`; ids are fresh on every call.
    """
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    events = []
    for i in range(count):
        provider, model, reasons, writes_cache = MODELS[i % len(MODELS)]
        input_tokens = rng.randint(1, 50_000)
        cache_read = rng.randint(0, input_tokens // 2)
        cache_write = rng.randint(0, (input_tokens - cache_read) // 2) if writes_cache else 0
        output_tokens = rng.randint(0, 5_000)
        events.append(
            make_event(
                project_id=PROJECTS[i % 3],
                agent_name=AGENTS[i % 4],
                session_id=None if i % 11 == 0 else f"sess-{i % 8}",
                provider=provider,
                model=model,
                timestamp=now - timedelta(seconds=rng.uniform(0, spread_seconds)),
                usage={
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "cache_read_tokens": cache_read,
                    "cache_write_tokens": cache_write,
                    "reasoning_tokens": rng.randint(0, output_tokens) if reasons else 0,
                },
            )
        )
    return events


def token_split(event: UsageTrackingEvent) -> tuple[int, int, int, int, int]:
    """(input, output, cache_read, cache_write, reasoning) of an event, for one-line assertions."""
    usage = event.usage
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )
