"""Tool rows rebuilt in SQL from stored events, per source message (a pure SQL builder).

The worker computes a message's tool rows in Python (stream_app/core/windows.py) as it
writes them. The upgrade of a first-release store needs the same rows from what is
already stored: this statement sums exactly what the Python aggregator sums (tested
against it), under the same (window, message) keys, so a rewrite replaces a message's
contribution instead of adding to it.
"""

from __future__ import annotations

from stream_app.core.rows import TOOL_COLUMNS
from stream_app.sink.schema import quote_identifier

_EVENTS = (
    "project_id AS ev_project, agent_name AS ev_agent, session_id AS ev_session, provider AS ev_provider, "
    "model AS ev_model, window_start AS ev_window, kafka_topic AS ev_topic, kafka_partition AS ev_partition, "
    "kafka_offset AS ev_offset"
)


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
