"""A rejected event's bytes as they arrived, even when it was one element of a batch.

A rejected batch element is dead-lettered as it arrived (same bytes, escapes and number
spellings), not re-encoded: re-encoding could fail (lone surrogates, depth) or change it
(duplicate keys). `json.loads` keeps no positions, so the element boundaries are found
by one scan of the message text, only when an element is actually needed.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string, or one structural character. Only run on text json.loads accepted.
_JSON_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')
_JSON_WHITESPACE = " \t\n\r"


class ElementSpans:
    """The original bytes of each element of a JSON array, found only when one is asked for.

    Found by one scan of the message, at the first rejection.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._spans: list[tuple[int, int]] | None = None

    def element_bytes(self, index: int, item: Any) -> bytes:
        """Element `index` as it was sent; `item` (its parsed value) is re-encoded only as a fallback."""
        if self._spans is None:
            self._spans = _array_element_spans(self._text)
        if index < len(self._spans):
            start, end = self._spans[index]
            return self._text[start:end].encode("utf-8")
        return item_bytes(item)  # unreachable for text json.loads accepted


def original_event_bytes(value: bytes, index: int | None) -> bytes:
    """One event as it arrived: the whole message, or element `index` of its JSON array.

    For dead letters decided after decoding (a conflicting duplicate), found by one scan
    of the message; only ever called for messages that decoded.
    """
    if index is None:
        return value
    text = value.decode("utf-8")
    spans = _array_element_spans(text)
    start, end = spans[index]
    return text[start:end].encode("utf-8")


def item_bytes(item: Any) -> bytes:
    """A parsed JSON value encoded compactly: the fallback when no original bytes exist."""
    try:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        # A lone surrogate (`"\\ud800"` in the JSON) cannot be UTF-8: keep it escaped, as it came.
        return json.dumps(item, separators=(",", ":")).encode()


def _array_element_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level element of the JSON array `text`, whitespace trimmed."""
    bounds: list[int] = []
    depth = 0
    for match in _JSON_STRUCTURE.finditer(text):
        char = text[match.start()]
        if char == '"':
            continue
        if char in "[{":
            depth += 1
            if depth == 1:
                bounds.append(match.end())
        elif char in "]}":
            if depth == 1:
                bounds.append(match.start())
            depth -= 1
        elif depth == 1:  # a comma between two elements
            bounds += [match.start(), match.end()]
    spans = []
    for start, end in zip(bounds[::2], bounds[1::2]):
        while start < end and text[start] in _JSON_WHITESPACE:
            start += 1
        while end > start and text[end - 1] in _JSON_WHITESPACE:
            end -= 1
        spans.append((start, end))
    return spans
