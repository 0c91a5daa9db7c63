"""Realistic demo traffic: several services, their agents and sessions, three providers.

Deterministic for a seed, so a demo run can be reproduced. Pure: returns events and
hand-made bad messages; publishing is the caller's job.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas import ToolCall, Usage, UsageTrackingEvent


@dataclass(frozen=True)
class ModelProfile:
    provider: str
    model: str
    reasoning: bool = False
    caches: bool = True
    cache_writes: bool = False


MODELS = (
    ModelProfile("openai", "gpt-4o"),
    ModelProfile("openai", "gpt-4o-mini"),
    ModelProfile("openai", "o4-mini", reasoning=True),
    ModelProfile("anthropic", "claude-sonnet-4-5", reasoning=True, cache_writes=True),
    ModelProfile("anthropic", "claude-haiku-4-5", cache_writes=True),
    ModelProfile("google", "gemini-2.5-flash", reasoning=True),
    ModelProfile("google", "gemini-2.5-pro", reasoning=True),
)
# A fine-tuned model the catalog cannot know: it must show up as unpriced, not as $0.
UNKNOWN_MODEL = ModelProfile("openai", "ft:gpt-4o-mini:acme:support-v3", caches=False)


@dataclass(frozen=True)
class Service:
    name: str
    project_id: str
    agents: tuple[str, ...]
    operations: tuple[str, ...]
    tools: tuple[str, ...]


SERVICES = (
    Service("support-api", "acme-support", ("triage", "responder", "escalation"), ("classify_ticket", "draft_reply"), ("kb_search", "crm_lookup")),
    Service("code-review-bot", "acme-eng", ("reviewer", "summarizer"), ("review_diff", "summarize_pr"), ("git_diff", "run_linter")),
    Service("research-worker", "globex-research", ("planner", "researcher", "writer"), ("generate_tasks", "answer", "write_report"), ("web_search", "fetch_page", "python")),
    Service("billing-assistant", "initech-finance", ("assistant",), ("answer_question",), ("sql_query",)),
)


def demo_events(
    count: int, *, now: datetime, seed: int = 7, spread: timedelta = timedelta(minutes=10)
) -> list[UsageTrackingEvent]:
    """`count` events across SERVICES, timestamps spread over the last `spread`."""
    rng = random.Random(seed)
    sessions = {s.name: [f"{s.name}-sess-{i:03d}" for i in range(12)] for s in SERVICES}
    events = []
    for i in range(count):
        service = SERVICES[i % len(SERVICES)]
        profile = UNKNOWN_MODEL if (service.name == "support-api" and rng.random() < 0.02) else rng.choice(MODELS)
        agent = rng.choice(service.agents)
        chain = [a for a in service.agents if a != agent][: rng.randint(0, 1)] + [agent]
        events.append(
            UsageTrackingEvent(
                schema_version=1,
                event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                timestamp=now - timedelta(seconds=rng.uniform(0, spread.total_seconds())),
                source=service.name,
                project_id=service.project_id,
                agent_name=agent,
                session_id=rng.choice(sessions[service.name]) if rng.random() < 0.9 else None,
                handoff_chain=chain,
                operation=rng.choice(service.operations),
                method="stream" if rng.random() < 0.4 else "generate",
                provider=profile.provider,
                model=profile.model,
                usage=_usage(rng, profile),
                tool_calls=_tool_calls(rng, service),
                finish_reason=rng.choice(("stop", "stop", "stop", "tool_calls", "length")),
                duration_ms=round(rng.uniform(150, 9000), 1),
                error="rate_limited: retried" if rng.random() < 0.01 else None,
                context={"region": rng.choice(("eu-west-1", "us-east-1")), "demo": True},
            )
        )
    return events


def _usage(rng: random.Random, profile: ModelProfile) -> Usage:
    input_tokens = rng.randint(200, 40_000)
    cache_read = rng.randint(0, input_tokens // 2) if profile.caches and rng.random() < 0.5 else 0
    cache_write = rng.randint(0, (input_tokens - cache_read) // 3) if profile.cache_writes and rng.random() < 0.3 else 0
    output_tokens = rng.randint(20, 4_000)
    reasoning = rng.randint(0, output_tokens // 2) if profile.reasoning else 0
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        total_tokens=input_tokens + output_tokens,
    )


def _tool_calls(rng: random.Random, service: Service) -> list[ToolCall]:
    if rng.random() < 0.6:
        return []
    return [
        ToolCall(
            name=rng.choice(service.tools),
            duration_ms=round(rng.uniform(5, 2000), 1),
            error="timeout" if rng.random() < 0.03 else None,
        )
        for _ in range(rng.randint(1, 3))
    ]


def malformed_messages(
    template: UsageTrackingEvent, batch_companions: tuple[UsageTrackingEvent, UsageTrackingEvent]
) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs a careless producer might send; each bad event must be dead-lettered.

    One message is a batch of the two `batch_companions` (valid, and billed) around one bad
    event: the bad one is dead-lettered alone.
    """
    base = template.wire_dict()

    def variant(**changes: object) -> dict:
        event = json.loads(json.dumps(base))
        event["event_id"] = f"bad-{uuid.uuid4()}"
        for dotted, value in changes.items():
            target = event
            *path, last = dotted.split("__")
            for part in path:
                target = target[part]
            if value is _DELETE:
                target.pop(last, None)
            else:
                target[last] = value
        return event

    key = template.project_id.encode()
    cache_too_big = variant(usage__cache_read_tokens=base["usage"]["input_tokens"] + 1)
    misspelled = variant(usage__input_token=5)
    misspelled["usage"].pop("input_tokens")
    first, second = (e.wire_dict() for e in batch_companions)
    batch_with_one_bad = [first, variant(usage__output_tokens=-3), second]
    return [
        (key, b'{"schema_version": 1, "event_id": "truncated-'),
        (key, json.dumps(cache_too_big).encode()),
        (key, json.dumps(misspelled).encode()),
        (key, json.dumps(variant(timestamp="2026-13-45T99:00:00")).encode()),
        (key, json.dumps(variant(provider_cost=0.1)).encode()),
        (key, json.dumps(batch_with_one_bad).encode()),
        (key, b"\xff\xfe not utf-8"),
    ]


class _Delete:
    pass


_DELETE = _Delete()
