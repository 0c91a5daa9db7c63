"""The benchmark's traffic population, as ClickHouse SQL for history and as events for fresh traffic.

`benchmarks/store_scaling.py` pre-loads 30 days of history straight into the store with
one `INSERT INTO usage_events SELECT … FROM numbers(N)` (millions of rows a minute,
where the worker's own path would take hours), and publishes fresh traffic of the
same shape through Kafka. Both draw from one population, so fresh events land among
the history's keys, projects, agents, sessions and models:

- projects hold fixed shares of the events (one holds 80%); each has its agents,
  operations and tools;
- sessions run ~40 events each, 10 at a time per project; 10% of events have none;
- models are the demo's catalog models, plus an unknown fine-tune (unpriced) at 1%;
- costs use the catalog's per-token rates, fitted by pricing probe events with the
  worker's own pricer (linear below the first price tier, which these sizes stay under);
- event ids are UUIDv7 stamped with the event time, as the SDK makes them (or random
  UUIDv4 with `random_ids`), so history ids are real look-up targets in the same key
  space as fresh ones;
- history events carry source offsets as if sent `events_per_message` to a message.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from schemas import ToolCall, Usage, UsageTrackingEvent
from stream_app.demo.traffic import MODELS, UNKNOWN_MODEL, ModelProfile

HISTORY_TOPIC = "usage-history"
SESSION_EVENTS = 40
CONCURRENT_SESSIONS = 10
NO_SESSION_PERCENT = 10
UNKNOWN_MODEL_PERCENT = 1
TOOL_PERCENT = 40
ALL_MODELS: tuple[ModelProfile, ...] = (*MODELS, UNKNOWN_MODEL)


@dataclass(frozen=True)
class ProjectProfile:
    project_id: str
    source: str
    percent: int  # share of all events
    agents: tuple[str, ...]
    operations: tuple[str, ...]
    tools: tuple[str, ...]


PROJECTS: tuple[ProjectProfile, ...] = (
    ProjectProfile(
        "acme-support", "support-api", 80,
        ("triage", "responder", "escalation", "summarizer", "qa-checker", "router"),
        ("classify_ticket", "draft_reply", "summarize_thread"), ("kb_search", "crm_lookup", "ticket_update"),
    ),
    ProjectProfile("acme-eng", "code-review-bot", 8, ("reviewer", "summarizer"), ("review_diff", "summarize_pr"), ("git_diff", "run_linter")),
    ProjectProfile(
        "globex-research", "research-worker", 6, ("planner", "researcher", "writer"),
        ("generate_tasks", "answer", "write_report"), ("web_search", "fetch_page", "python"),
    ),
    ProjectProfile("initech-finance", "billing-assistant", 4, ("assistant",), ("answer_question",), ("sql_query",)),
    ProjectProfile("umbrella-ops", "ops-copilot", 2, ("oncall", "runbook"), ("triage_alert",), ("pagerduty", "grafana_query")),
)
assert sum(p.percent for p in PROJECTS) == 100


@dataclass(frozen=True)
class ModelRates:
    """USD per token of each component, and the price columns a row of this model carries."""

    per_input: Decimal
    per_output: Decimal
    cache_read_delta: Decimal  # on top of per_input for a cached input token (negative: a discount)
    cache_write_delta: Decimal
    reasoning_delta: Decimal
    status: str
    source: str
    catalog_provider: str
    catalog_model: str
    detail: str


def fit_model_rates() -> tuple[ModelRates, ...]:
    """Per-token rates of `ALL_MODELS`, from the worker's pricer (probe events of 1,000 tokens)."""
    from stream_app.core.pricing import price_event

    template = fresh_events(1, now=datetime(2026, 1, 1, tzinfo=timezone.utc), seed=0, random_ids=True)[0]

    def cost(profile: ModelProfile, **usage: int) -> tuple[Decimal, object]:
        event = template.model_copy(update={"provider": profile.provider, "model": profile.model, "usage": Usage(**usage)})
        priced = price_event(event)
        return priced.cost_usd, priced

    rates = []
    for profile in ALL_MODELS:
        base, priced = cost(profile, input_tokens=1000, output_tokens=1000)
        only_in, _ = cost(profile, input_tokens=1000, output_tokens=0)
        only_out, _ = cost(profile, input_tokens=0, output_tokens=1000)
        read, _ = cost(profile, input_tokens=1000, output_tokens=1000, cache_read_tokens=1000)
        write, _ = cost(profile, input_tokens=1000, output_tokens=1000, cache_write_tokens=1000)
        reason, _ = cost(profile, input_tokens=1000, output_tokens=1000, reasoning_tokens=1000)
        k = Decimal(1000)
        rates.append(
            ModelRates(
                only_in / k, only_out / k, (read - base) / k, (write - base) / k, (reason - base) / k,
                priced.status, priced.source, priced.catalog_provider, priced.catalog_model, priced.detail,
            )
        )
    return tuple(rates)


# --- history, as SQL ------------------------------------------------------------------------


def _array(values: object) -> str:
    return "[" + ", ".join(_literal(v) for v in values) + "]"


def _literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, Decimal):
        return f"toDecimal128('{value:f}', 18)"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return _array(value)
    return str(value)


def history_insert_sql(
    database: str,
    events: int,
    *,
    start: datetime,
    end: datetime,
    window_seconds: int,
    events_per_message: int,
    partitions: int,
    rates: tuple[ModelRates, ...],
    random_ids: bool = False,
) -> str:
    """`INSERT INTO usage_events SELECT … FROM numbers(events)`: `events` billed events in [start, end).

    Event n's project follows its position in a block of 100 (shares are whole percents),
    so each project's running count `k` is arithmetic: no sort, no window function. Time
    grows with n, so UUIDv7 ids sort like time, as the SDK's do.
    """
    from stream_app.core.rows import EVENT_COLUMNS
    from stream_app.sink.schema import quote_identifier

    if events <= 0:
        raise ValueError("events must be positive")
    start_us = int(start.timestamp() * 1_000_000)
    step_us = max(1, int((end - start).total_seconds() * 1_000_000) // events)
    shares = [p.percent for p in PROJECTS]
    starts = [sum(shares[:i]) for i in range(len(shares))]
    project_index = "multiIf(" + ", ".join(f"pos < {starts[i] + shares[i]}, {i}" for i in range(len(shares) - 1)) + f", {len(shares) - 1})"
    unknown = len(ALL_MODELS) - 1
    pick = lambda arr, h: f"{arr}[{h} % length({arr}) + 1]"  # noqa: E731 - SQL snippet
    agents = _array([p.agents for p in PROJECTS])
    ops = _array([p.operations for p in PROJECTS])
    tools = _array([p.tools for p in PROJECTS])
    tool_json = (
        "concat('[', arrayStringConcat(arrayMap(i -> concat("
        "'{\"duration_ms\":', toString(toDecimal64(50 + cityHash64(n, 20 + i) % 19950, 1) / 10), "
        "',\"error\":', if(cityHash64(n, 30 + i) % 100 < 3, '\"timeout\"', 'null'), "
        f"',\"name\":\"', {pick(f'{tools}[p + 1]', 'cityHash64(n, 40 + i)')}, '\"}}'), range(tool_count)), ','), ']')"
    )
    if random_ids:
        event_id = "toString(generateUUIDv4(n))"
    else:
        event_id = (
            "concat(substring(t, 1, 8), '-', substring(t, 9, 4), '-7', substring(r, 1, 3), '-', "
            "['8', '9', 'a', 'b'][cityHash64(n, 52) % 4 + 1], substring(r, 4, 3), '-', substring(r2, 1, 12))"
        )
    columns = {
        "event_id": "event_id",
        "project_id": f"{_array([p.project_id for p in PROJECTS])}[p + 1]",
        "timestamp": "ts",
        "window_start": f"toDateTime(intDiv(toUnixTimestamp(ts), {window_seconds}) * {window_seconds}, 'UTC')",
        "source": f"{_array([p.source for p in PROJECTS])}[p + 1]",
        "agent_name": "agent",
        "session_id": (
            f"if(cityHash64(n, 3) % 100 < {NO_SESSION_PERCENT}, '', concat({_array([p.source for p in PROJECTS])}[p + 1], "
            f"'-sess-', toString(intDiv(k, {SESSION_EVENTS * CONCURRENT_SESSIONS}) * {CONCURRENT_SESSIONS} "
            f"+ cityHash64(n, 4) % {CONCURRENT_SESSIONS})))"
        ),
        "handoff_chain": "[agent]",
        "operation": pick(f"{ops}[p + 1]", "cityHash64(n, 5)"),
        "method": "if(cityHash64(n, 6) % 10 < 4, 'stream', 'generate')",
        "provider": f"{_array([m.provider for m in ALL_MODELS])}[m + 1]",
        "model": f"{_array([m.model for m in ALL_MODELS])}[m + 1]",
        "input_tokens": "input",
        "output_tokens": "output",
        "cache_read_tokens": "cache_read",
        "cache_write_tokens": "cache_write",
        "reasoning_tokens": "reasoning",
        "tool_call_count": "tool_count",
        "tool_calls": f"if(tool_count = 0, '[]', {tool_json})",
        "finish_reason": "['stop', 'stop', 'stop', 'tool_calls', 'length'][cityHash64(n, 7) % 5 + 1]",
        "duration_ms": "150 + cityHash64(n, 8) % 88500 / 10",
        "error": "if(cityHash64(n, 9) % 100 = 0, 'rate_limited: retried', NULL)",
        "cost_usd": (
            f"toDecimal128(input, 0) * {_array([r.per_input for r in rates])}[m + 1] "
            f"+ toDecimal128(output, 0) * {_array([r.per_output for r in rates])}[m + 1] "
            f"+ toDecimal128(cache_read, 0) * {_array([r.cache_read_delta for r in rates])}[m + 1] "
            f"+ toDecimal128(cache_write, 0) * {_array([r.cache_write_delta for r in rates])}[m + 1] "
            f"+ toDecimal128(reasoning, 0) * {_array([r.reasoning_delta for r in rates])}[m + 1]"
        ),
        "price_status": f"{_array([r.status for r in rates])}[m + 1]",
        "price_source": f"{_array([r.source for r in rates])}[m + 1]",
        "catalog_provider": f"{_array([r.catalog_provider for r in rates])}[m + 1]",
        "catalog_model": f"{_array([r.catalog_model for r in rates])}[m + 1]",
        "price_detail": f"{_array([r.detail for r in rates])}[m + 1]",
        "provider_cost_usd": "NULL",
        "provider_metadata": "'{}'",
        "context": "if(cityHash64(n, 10) % 2 = 0, '{\"region\":\"eu-west-1\"}', '{\"region\":\"us-east-1\"}')",
        "kafka_topic": _literal(HISTORY_TOPIC),
        "kafka_partition": f"p % {partitions}",
        "kafka_offset": f"intDiv(k, {events_per_message}) * {len(PROJECTS)} + p",
        "batch_index": f"k % {events_per_message}",
        "fingerprint": "0",  # "unknown": a later copy would be compared field by field
        "price_generation": "0",
        "ingested_at": "ts + toIntervalSecond(2)",
    }
    assert tuple(columns) == EVENT_COLUMNS, "history columns must follow EVENT_COLUMNS"
    db = quote_identifier(database)
    return f"""INSERT INTO {db}.usage_events ({", ".join(EVENT_COLUMNS)})
SELECT {", ".join(columns.values())}
FROM (
    SELECT *,
        {event_id} AS event_id,
        {pick(f'{agents}[p + 1]', 'cityHash64(n, 11)')} AS agent,
        multiIf(p = 0 AND cityHash64(n, 12) % 100 < {UNKNOWN_MODEL_PERCENT}, {unknown}, cityHash64(n, 13) % {unknown}) AS m,
        200 + cityHash64(n, 14) % 39801 AS input,
        if({_array([x.caches for x in ALL_MODELS])}[m + 1] AND cityHash64(n, 15) % 2 = 0,
           cityHash64(n, 16) % (intDiv(input, 2) + 1), 0) AS cache_read,
        if({_array([x.cache_writes for x in ALL_MODELS])}[m + 1] AND cityHash64(n, 17) % 10 < 3,
           cityHash64(n, 18) % (intDiv(input - cache_read, 3) + 1), 0) AS cache_write,
        20 + cityHash64(n, 19) % 3981 AS output,
        if({_array([x.reasoning for x in ALL_MODELS])}[m + 1], cityHash64(n, 21) % (intDiv(output, 2) + 1), 0) AS reasoning,
        if(cityHash64(n, 22) % 100 < {TOOL_PERCENT}, 1 + cityHash64(n, 23) % 3, 0) AS tool_count,
        leftPad(lower(hex(intDiv(toUnixTimestamp64Micro(ts), 1000))), 12, '0') AS t,
        leftPad(lower(hex(cityHash64(n, 50))), 16, '0') AS r,
        leftPad(lower(hex(cityHash64(n, 51))), 16, '0') AS r2
    FROM (
        SELECT number AS n, n % 100 AS pos, {project_index} AS p,
            intDiv(n, 100) * {_array(shares)}[p + 1] + pos - {_array(starts)}[p + 1] AS k,
            fromUnixTimestamp64Micro(toInt64({start_us} + n * {step_us} + cityHash64(n, 1) % {step_us}), 'UTC') AS ts
        FROM numbers({int(events)})
    )
)
SETTINGS max_partitions_per_insert_block = 0"""


# --- fresh traffic, as events ------------------------------------------------------------------


def uuid7(moment: datetime, rng: random.Random) -> str:
    """A UUIDv7 (RFC 9562) for `moment`: 48-bit milliseconds, then random bits."""
    ms = int(moment.timestamp() * 1000)
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return str(uuid.UUID(int=value))


def fresh_events(
    count: int, *, now: datetime, seed: int, random_ids: bool = False, spread: timedelta = timedelta(minutes=10)
) -> list[UsageTrackingEvent]:
    """`count` events of the population over the last `spread`, in time order (ids too)."""
    return list(iter_fresh_events(count, now=now, seed=seed, random_ids=random_ids, spread=spread))


def iter_fresh_events(
    count: int, *, now: datetime, seed: int, random_ids: bool = False, spread: timedelta = timedelta(minutes=10)
) -> Iterator[UsageTrackingEvent]:
    rng = random.Random(seed)
    weights = [p.percent for p in PROJECTS]
    counters = [0] * len(PROJECTS)
    for i in range(count):
        index = rng.choices(range(len(PROJECTS)), weights)[0]
        project = PROJECTS[index]
        k = counters[index]
        counters[index] += 1
        moment = now - spread * (1 - i / max(count, 1))
        unknown = index == 0 and rng.randrange(100) < UNKNOWN_MODEL_PERCENT
        profile = UNKNOWN_MODEL if unknown else rng.choice(MODELS)
        session = None
        if rng.randrange(100) >= NO_SESSION_PERCENT:
            number = k // (SESSION_EVENTS * CONCURRENT_SESSIONS) * CONCURRENT_SESSIONS + rng.randrange(CONCURRENT_SESSIONS)
            session = f"{project.source}-fresh-sess-{seed}-{number}"
        agent = rng.choice(project.agents)
        yield UsageTrackingEvent(
            schema_version=1,
            event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)) if random_ids else uuid7(moment, rng),
            timestamp=moment,
            source=project.source,
            project_id=project.project_id,
            agent_name=agent,
            session_id=session,
            handoff_chain=[agent],
            operation=rng.choice(project.operations),
            method="stream" if rng.randrange(10) < 4 else "generate",
            provider=profile.provider,
            model=profile.model,
            usage=_usage(rng, profile),
            tool_calls=_tool_calls(rng, project),
            finish_reason=rng.choice(("stop", "stop", "stop", "tool_calls", "length")),
            duration_ms=round(150 + rng.randrange(88500) / 10, 1),
            error="rate_limited: retried" if rng.randrange(100) == 0 else None,
            context={"region": rng.choice(("eu-west-1", "us-east-1"))},
        )


def _usage(rng: random.Random, profile: ModelProfile) -> Usage:
    input_tokens = 200 + rng.randrange(39801)
    cache_read = rng.randrange(input_tokens // 2 + 1) if profile.caches and rng.randrange(2) == 0 else 0
    cache_write = rng.randrange((input_tokens - cache_read) // 3 + 1) if profile.cache_writes and rng.randrange(10) < 3 else 0
    output_tokens = 20 + rng.randrange(3981)
    reasoning = rng.randrange(output_tokens // 2 + 1) if profile.reasoning else 0
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def _tool_calls(rng: random.Random, project: ProjectProfile) -> list[ToolCall]:
    if rng.randrange(100) >= TOOL_PERCENT:
        return []
    return [
        ToolCall(
            name=rng.choice(project.tools),
            duration_ms=round(5 + rng.randrange(19950) / 10, 1),
            error="timeout" if rng.randrange(100) < 3 else None,
        )
        for _ in range(1 + rng.randrange(3))
    ]
