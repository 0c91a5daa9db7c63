"""The wire contract of the usage pipeline: pydantic models only, no I/O."""

from schemas.event import SCHEMA_VERSION, ToolCall, Usage, UsageTrackingEvent
from schemas.json_schema import JSON_SCHEMA_PATH, event_json_schema

__all__ = [
    "SCHEMA_VERSION",
    "JSON_SCHEMA_PATH",
    "ToolCall",
    "Usage",
    "UsageTrackingEvent",
    "event_json_schema",
]
