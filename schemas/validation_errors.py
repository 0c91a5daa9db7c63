"""How a pydantic error about an event is worded for a person: which field, and what is wrong.

Shared by every place that tells a producer its event is invalid (`emit`, ingest-http),
so the same mistake reads the same wherever it is caught.
"""

from __future__ import annotations

from typing import Any


def error_field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic `loc` as a field path: `usage.input_tokens`, `tool_calls[2].name`; `""` for the event itself."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def error_message(error: Any) -> str:
    """A pydantic error's message, without the prefix pydantic adds to our own validators' text."""
    message = error["msg"]
    # The rule text of our validators says enough on its own.
    if error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    return message
