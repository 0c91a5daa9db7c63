"""The JSON Schema shipped beside the models, for producers in other languages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.event import SCHEMA_VERSION, UsageTrackingEvent

JSON_SCHEMA_PATH = Path(__file__).with_name(f"usage_tracking_event.v{SCHEMA_VERSION}.schema.json")


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of `UsageTrackingEvent`, generated from the pydantic model."""
    schema = UsageTrackingEvent.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:llm-usage-pipeline:usage-tracking-event:v{SCHEMA_VERSION}",
        **schema,
    }


def render_json_schema() -> str:
    """The schema file's exact text (stable key order, trailing newline)."""
    return json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n"
