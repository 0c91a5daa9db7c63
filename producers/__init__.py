"""Track and publish LLM usage events: what a service embeds to report its LLM calls.

    from producers import configure_usage_tracking, usage_context, instrument_openai

    configure_usage_tracking(source="support-api")        # Kafka from KAFKA_BOOTSTRAP_SERVERS
    client = instrument_openai(openai.OpenAI())            # every call is now an event
    with usage_context(project_id="acme", agent_name="triage", session_id=sid):
        client.chat.completions.create(...)

Needs only pydantic to import; publishing needs aiokafka (the `producer` extra), and the
provider SDKs are imported only by `instrument_openai` / `instrument_anthropic`. Pure
parts: `pack_batches` (per-project JSON-array batches), `parse_jsonl`, the usage mappers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from producers.batching import EventBatch, pack_batches
from producers.errors import ProducerError
from producers.jsonl import Rejection, parse_jsonl

if TYPE_CHECKING:
    from producers.batch_stats import BatchStats
    from producers.context import bind_usage_context, current_usage_context, usage_context
    from producers.instrument import instrument_anthropic, instrument_openai
    from producers.llm_call import LlmCall, current_llm_call, track_llm_call
    from producers.publisher import KafkaPublisher, PublishResult
    from producers.response import UsageResponse, collect_usage, with_usage, with_usage_async
    from producers.spool import EventSpool
    from producers.tracking import (
        UsageTrackingConfig,
        configure_usage_tracking,
        emit,
        flush_usage_tracking,
        reset_usage_tracking,
        usage_tracking_stats,
    )
    from producers.transport import KafkaTransport, TransportStats

# Loaded on first use, so `import producers` stays cheap and pulls in no Kafka client.
_LAZY_EXPORTS = {
    "KafkaPublisher": "producers.publisher",
    "PublishResult": "producers.publisher",
    "configure_usage_tracking": "producers.tracking",
    "reset_usage_tracking": "producers.tracking",
    "UsageTrackingConfig": "producers.tracking",
    "emit": "producers.tracking",
    "flush_usage_tracking": "producers.tracking",
    "usage_tracking_stats": "producers.tracking",
    "usage_context": "producers.context",
    "current_usage_context": "producers.context",
    "bind_usage_context": "producers.context",
    "track_llm_call": "producers.llm_call",
    "LlmCall": "producers.llm_call",
    "current_llm_call": "producers.llm_call",
    "instrument_openai": "producers.instrument",
    "instrument_anthropic": "producers.instrument",
    "UsageResponse": "producers.response",
    "collect_usage": "producers.response",
    "with_usage": "producers.response",
    "with_usage_async": "producers.response",
    "BatchStats": "producers.batch_stats",
    "KafkaTransport": "producers.transport",
    "TransportStats": "producers.transport",
    "EventSpool": "producers.spool",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


__all__ = [
    "BatchStats",
    "EventBatch",
    "EventSpool",
    "KafkaPublisher",
    "KafkaTransport",
    "LlmCall",
    "ProducerError",
    "PublishResult",
    "Rejection",
    "TransportStats",
    "UsageResponse",
    "UsageTrackingConfig",
    "bind_usage_context",
    "collect_usage",
    "configure_usage_tracking",
    "current_llm_call",
    "current_usage_context",
    "emit",
    "flush_usage_tracking",
    "instrument_anthropic",
    "instrument_openai",
    "pack_batches",
    "parse_jsonl",
    "reset_usage_tracking",
    "track_llm_call",
    "usage_context",
    "usage_tracking_stats",
    "with_usage",
    "with_usage_async",
]
