"""Publish LLM usage events to Kafka: what a service embeds to report its LLM calls.

Needs only pydantic to import; `KafkaPublisher` needs aiokafka (the `producer` extra) once
it starts. Pure parts: `pack_batches` (per-project JSON-array batches) and `parse_jsonl`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from producers.batching import EventBatch, pack_batches
from producers.errors import ProducerError
from producers.jsonl import Rejection, parse_jsonl

if TYPE_CHECKING:
    from producers.publisher import KafkaPublisher, PublishResult

# Loaded on first use, so `import producers` does not pull in the Kafka client.
_LAZY_EXPORTS = {
    "KafkaPublisher": "producers.publisher",
    "PublishResult": "producers.publisher",
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
    "EventBatch",
    "KafkaPublisher",
    "ProducerError",
    "PublishResult",
    "Rejection",
    "pack_batches",
    "parse_jsonl",
]
