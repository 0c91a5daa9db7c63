"""Window rows rebuilt in SQL from stored events, per source message (pure SQL builders).

The worker computes a message's window rows in Python (stream_app/core/windows.py) as
it writes them. Two jobs need the same rows from what is already stored: the upgrade of
a first-release store, and `reprice`, which rewrites the windows of the messages whose
events it repriced. They use these statements, which sum exactly what the Python
aggregator sums (tested against it), under the same (window, message) keys, so a
rewrite replaces a message's contribution instead of adding to it.
"""

from __future__ import annotations

from stream_app.core.rows import TOOL_COLUMNS, WINDOW_COLUMNS
from stream_app.sink.schema import quote_identifier

_EVENTS = (
    "project_id AS ev_project, agent_name AS ev_agent, session_id AS ev_session, provider AS ev_provider, "
    "model AS ev_model, window_start AS ev_window, kafka_topic AS ev_topic, kafka_partition AS ev_partition, "
    "kafka_offset AS ev_offset"
)


def message_windows_insert_sql(database: str, where: str, *, window_seconds: int) -> str:
    """Rewrite the window rows of every message that has stored events matching `where`.

    `where` filters `usage_events` (e.g. a project and a list of sources); every event
    of a matched message must match it too, or the message's rows would be partial.
    The rows' version is the newest price generation among the message's events, so
    they replace what the worker or an older reprice wrote, and nothing newer.
    """
    db = quote_identifier(database)
    return f"""INSERT INTO {db}.usage_windows ({", ".join(WINDOW_COLUMNS)})
SELECT g.1, ev_project, g.2, g.3, g.4, g.5, ev_window, {int(window_seconds)}, ev_topic, ev_partition, ev_offset,
    count(), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
    sum(reasoning_tokens), sum(cost_usd), countIf(price_status != 'priced'), countIf(error IS NOT NULL),
    sum(tool_call_count), max(price_generation)
FROM (
    SELECT {_EVENTS}, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
        cost_usd, price_status, error, tool_call_count, price_generation
    FROM {db}.usage_events FINAL{_where(where)}
)
ARRAY JOIN [
    ('project', '', '', '', ''),
    ('agent', toString(ev_agent), '', '', ''),
    ('session', '', ev_session, '', ''),
    ('model', '', '', toString(ev_provider), toString(ev_model))
] AS g
GROUP BY g, ev_project, ev_window, ev_topic, ev_partition, ev_offset
SETTINGS max_partitions_per_insert_block = 0"""


def message_tool_windows_insert_sql(database: str, where: str, *, window_seconds: int) -> str:
    """Rewrite the tool rows of every message that has stored events matching `where`."""
    db = quote_identifier(database)
    return f"""INSERT INTO {db}.usage_tool_windows ({", ".join(TOOL_COLUMNS)})
SELECT ev_project, ev_agent, JSONExtractString(t, 'name') AS tool, ev_window, {int(window_seconds)},
    ev_topic, ev_partition, ev_offset, count(), countIf(JSONType(t, 'error') = 'String'),
    groupArrayIf(JSONExtractFloat(t, 'duration_ms'), JSONType(t, 'duration_ms') IN ('Double', 'Int64', 'UInt64')),
    max(price_generation)
FROM (
    SELECT {_EVENTS}, JSONExtractArrayRaw(tool_calls) AS ev_tools, price_generation
    FROM {db}.usage_events FINAL{_where(where)}
)
ARRAY JOIN ev_tools AS t
GROUP BY ev_project, ev_agent, tool, ev_window, ev_topic, ev_partition, ev_offset
SETTINGS max_partitions_per_insert_block = 0"""


def _where(condition: str) -> str:
    return f" WHERE {condition}" if condition else ""
