"""Checks on the free-form objects (`context`, `provider_metadata`) that the schema cannot make.

The schema types every other field of an event; these two take any JSON, so what could
break a later step is checked here, before pydantic: prompt or completion text under a
denied `context` key (a metering pipeline must not store it), and values that
`json.loads` lets through but no later re-encoding or ClickHouse write survives. Both
the pydantic path (`decode`) and the fast path (`fast_decode`) call the same functions,
so the two cannot disagree on what is refused.
"""

from __future__ import annotations

import math
from typing import Any

from schemas.event import MAX_OBJECT_JSON_BYTES

# The free-form objects are the only fields whose depth the schema does not bound;
# deeper than this they would strain every later re-encoding.
MAX_NESTING_DEPTH = 64
_FREE_FORM_FIELDS = ("context", "provider_metadata")
# `context` keys that hold prompt or completion text, which a metering pipeline must not
# store (USAGE_CONTEXT_DENY_KEYS overrides; an empty set turns the check off).
DEFAULT_DENIED_CONTEXT_KEYS = frozenset({"prompt", "messages", "content", "completion"})
REMOVED_MARKER = "<removed by the usage pipeline: possible prompt text>"


def denied_context_path(item: dict[str, Any], denied: frozenset[str]) -> str | None:
    """The path of the first denied key anywhere inside `context`, or None.

    Nested keys count too: `{"request": {"messages": [...]}}` carries prompt text as surely
    as a top-level `messages`. Depth is bounded like the free-form check's.
    """
    context = item.get("context")
    if not denied or not isinstance(context, dict) or not context:
        return None
    stack: list[tuple[Any, str, int]] = [(context, "context", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            continue  # the free-form check rejects it for its depth
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            child_path = f"{path}.{key}" if isinstance(node, dict) else f"{path}[{key}]"
            if isinstance(key, str) and key in denied:
                return child_path
            if isinstance(child, (dict, list)) and child:
                stack.append((child, child_path, depth + 1))
    return None


def without_denied_keys(value: Any, denied: frozenset[str], depth: int = 0) -> Any:
    """A copy of an event with the values of denied `context` keys replaced by a marker."""
    if depth == 0:
        return {k: (without_denied_keys(v, denied, 1) if k == "context" else v) for k, v in value.items()}
    if depth > MAX_NESTING_DEPTH:
        return REMOVED_MARKER
    if isinstance(value, dict):
        return {k: (REMOVED_MARKER if k in denied else without_denied_keys(v, denied, depth + 1)) for k, v in value.items()}
    if isinstance(value, list):
        return [without_denied_keys(v, denied, depth + 1) for v in value]
    return value


def free_form_problem(item: dict[str, Any]) -> str | None:
    """What makes a free-form object unstorable, or None.

    The schema types every other field; these take any JSON, so three things that
    `json.loads` lets through are checked here: strings that are not Unicode (a lone
    `\\ud800` escape: the ClickHouse write would fail forever), numbers too large for a
    float (`1e400` becomes infinity), and nesting deeper than `MAX_NESTING_DEPTH`.
    """
    for field in _FREE_FORM_FIELDS:
        value = item.get(field)
        if not value or not isinstance(value, dict):
            continue  # absent, empty, or the wrong type, which the schema reports
        # Every entry takes at least 4 bytes of JSON: past this many, the schema's size
        # bound rejects the object anyway, so stop walking it.
        budget = MAX_OBJECT_JSON_BYTES // 4
        stack: list[tuple[Any, str, int]] = [(value, field, 1)]
        while stack and budget > 0:
            node, path, depth = stack.pop()
            if depth > MAX_NESTING_DEPTH:
                return f"{field}: nested more than {MAX_NESTING_DEPTH} levels deep"
            children = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in children:
                budget -= 1
                # isascii() first: nearly every string is ASCII, and that check is cheap.
                if type(key) is str and not key.isascii() and not _is_unicode(key):
                    return f"{printable_path(path)}: a key holds a lone UTF-16 surrogate, which is not Unicode text"
                if type(child) is str:
                    if not child.isascii() and not _is_unicode(child):
                        return f"{printable_path(f'{path}.{key}')}: holds a lone UTF-16 surrogate, which is not Unicode text"
                elif isinstance(child, (dict, list)):
                    if child:
                        stack.append((child, f"{path}.{key}", depth + 1))
                elif type(child) is float and not math.isfinite(child):
                    return f"{printable_path(f'{path}.{key}')}: number is out of range for a 64-bit float"
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_path(path: str) -> str:
    """A field path cut to 200 characters, lone surrogates escaped, fit for a UTF-8 message."""
    return path[:200].encode("utf-8", "backslashreplace").decode("utf-8")
