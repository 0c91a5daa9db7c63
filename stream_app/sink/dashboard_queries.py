"""The dashboard's panel queries, built as exact SQL strings by pure functions (tested as strings).

Every billing panel reads the pre-aggregated window cells (`usage_window_cells`, in
whole days, whole hours and single windows, `stream_app/sink/levels.py`) and tool rows
(`usage_tool_windows`) with `FINAL`, exactly as `report_sql` does, so a panel costs in
proportion to the cells in its range, never to the events stored. The one exception
is the recent-failures list, whose error texts only the billed events keep: it is
bounded (one project, a time range of at most `FAILURES_MAX_SECONDS`, 50 rows) and
marked `reads_events`, so a benchmark can tell it apart.

The windows group models and sessions by project only (SPEC.md §3): with an agent
filter, the panels that would need a model or session *within an agent* are not
answered (their SQL is None and `unavailable` says why) rather than answered wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stream_app.core.window_cells import cell_levels
from stream_app.sink.levels import level_pieces, pieces_condition
from stream_app.sink.schema import quote_identifier, quote_string

# Preset ranges: their span in seconds.
RANGES: dict[str, int] = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
STACKS = ("model", "project", "agent")
# A chart has at most this many buckets (fewer for short ranges), and this many series:
# beyond it the smallest are summed as OTHER_SERIES, so a chart stays readable and its
# query result small however many tenants exist.
MAX_BUCKETS = 120
MAX_SERIES = 8
OTHER_SERIES = "(other)"
TOP_ROWS = 10
FAILURES_LIMIT = 50
FAILURES_MAX_SECONDS = 86_400
# Bucket sizes a person reads easily; the first that keeps a range under MAX_BUCKETS wins.
NICE_BUCKETS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 7 * 86_400)

_FINAL_SETTINGS = " SETTINGS do_not_merge_across_partitions_select_final = 1"
_TOTALS = (
    "sum(events) AS events, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
    "sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd, "
    "sum(unpriced_events) AS unpriced_events, sum(failed_events) AS failed_events, sum(tool_calls) AS tool_calls"
)
TOTAL_FIELDS: tuple[str, ...] = (
    "events", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_usd", "unpriced_events", "failed_events", "tool_calls",
)
_TOOL_VALUES = (
    "sum(calls) AS calls, sum(errors) AS errors, sum(length(durations_ms)) AS timed, "
    "if(timed = 0, NULL, avgArray(durations_ms)) AS avg_duration_ms, "
    "if(timed = 0, NULL, quantileExactArray(0.95)(durations_ms)) AS p95_duration_ms"
)
TOOL_FIELDS: tuple[str, ...] = ("calls", "errors", "avg_duration_ms", "p95_duration_ms")


@dataclass(frozen=True)
class DashboardFilter:
    """What the page shows: [since, until) in epoch seconds (whole windows), buckets, scope."""

    since: int
    until: int
    bucket_seconds: int
    project: str | None = None
    agent: str | None = None
    stack: str = "model"
    window_seconds: int = 60

    def __post_init__(self) -> None:
        if self.since >= self.until:
            raise ValueError("the range is empty: since must be before until")
        if self.bucket_seconds <= 0:
            raise ValueError("bucket size must be positive")
        if self.stack not in STACKS:
            raise ValueError(f"stack must be one of {', '.join(STACKS)}, not {self.stack!r}")


def bucket_for_span(span_seconds: int, window_seconds: int) -> int:
    """The bucket size for a range: a nice size, a whole multiple of the window, <= MAX_BUCKETS buckets."""
    for size in NICE_BUCKETS:
        # ...and still MAX_BUCKETS / 8 buckets or more: an odd window size gets its own multiple.
        if size % window_seconds == 0 and MAX_BUCKETS / 8 <= span_seconds / size <= MAX_BUCKETS:
            return size
    windows = -(-span_seconds // (MAX_BUCKETS * window_seconds))
    return max(1, windows) * window_seconds


def resolve_filter(
    range_name: str,
    now: datetime,
    window_seconds: int,
    *,
    project: str | None = None,
    agent: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    stack: str = "model",
) -> DashboardFilter:
    """The filter for a preset range ending now, or for `custom` [since, until), widened to whole windows.

    A preset starts on a bucket boundary, so its first bucket is whole and the cards equal
    `report --since <since> --until <until>` over the same whole windows.
    """
    if range_name == "custom":
        if since is None or until is None:
            raise ValueError("a custom range needs since and until")
        start = int(since.timestamp()) // window_seconds * window_seconds
        end = -(-int(until.timestamp()) // window_seconds) * window_seconds
        if start >= end:
            raise ValueError("since must be before until")
        return DashboardFilter(
            start, end, bucket_for_span(end - start, window_seconds), project, agent, stack, window_seconds
        )
    if range_name not in RANGES:
        raise ValueError(f"range must be one of {', '.join([*RANGES, 'custom'])}, not {range_name!r}")
    span = RANGES[range_name]
    bucket = bucket_for_span(span, window_seconds)
    end = -(-int(now.timestamp()) // window_seconds) * window_seconds
    start = (end - span) // bucket * bucket
    return DashboardFilter(start, end, bucket, project, agent, stack, window_seconds)


@dataclass(frozen=True)
class Panel:
    """One panel's query: its result columns, and None with a reason when the windows cannot answer it."""

    name: str
    columns: tuple[str, ...]
    sql: str | None
    unavailable: str | None = None
    reads_events: bool = False


def panels(database: str, f: DashboardFilter) -> list[Panel]:
    """Every panel query of the dashboard for one filter (what the page runs, what a benchmark times)."""
    return [
        summary_panel(database, f),
        cost_over_time_panel(database, f),
        tokens_over_time_panel(database, f),
        top_panel(database, f, "projects"),
        top_panel(database, f, "agents"),
        top_panel(database, f, "sessions"),
        top_panel(database, f, "models"),
        unpriced_models_panel(database, f),
        tools_panel(database, f),
        tools_over_time_panel(database, f),
        tool_errors_by_agent_panel(database, f),
        recent_failures_panel(database, f),
        choices_panel(database, f),
    ]


def _windows_where(f: DashboardFilter, grouping: str, *, agent: bool = True, bucketed: bool = False) -> str:
    """Cells of one grouping in the filter's scope, tiling its range (within each bucket when bucketed)."""
    pieces = level_pieces(f.since, f.until, cell_levels(f.window_seconds), f.bucket_seconds if bucketed else None)
    conditions = [
        f"grouping = {quote_string(grouping)}",
        *_scope(f, agent=agent, times=False),
        pieces_condition(pieces),
    ]
    return " WHERE " + " AND ".join(conditions)


def _scope(f: DashboardFilter, *, agent: bool = True, times: bool = True) -> list[str]:
    conditions = []
    if f.project is not None:
        conditions.append(f"project_id = {quote_string(f.project)}")
    if agent and f.agent is not None:
        conditions.append(f"agent_name = {quote_string(f.agent)}")
    if not times:
        return conditions
    conditions.append(f"window_start >= toDateTime({int(f.since)}, 'UTC')")
    conditions.append(f"window_start < toDateTime({int(f.until)}, 'UTC')")
    return conditions


def _totals_grouping(f: DashboardFilter) -> str:
    # Every event is in exactly one project window and one agent window: both sum to the
    # same totals, and only agent rows can be narrowed to one agent.
    return "agent" if f.agent is not None else "project"


def _bucket(f: DashboardFilter) -> str:
    size = int(f.bucket_seconds)
    return f"toDateTime(intDiv(toUInt32(window_start), {size}) * {size}, 'UTC') AS bucket"


def summary_panel(database: str, f: DashboardFilter) -> Panel:
    """The summary cards: the report's totals over the whole filter, one row."""
    sql = (
        f"SELECT {_TOTALS} FROM {quote_identifier(database)}.usage_window_cells FINAL"
        f"{_windows_where(f, _totals_grouping(f))}{_FINAL_SETTINGS}"
    )
    return Panel("summary", TOTAL_FIELDS, sql)


def _series_expression(f: DashboardFilter) -> tuple[str, str] | None:
    """(grouping, series expression) of the cost chart's stack, or None when the windows lack it."""
    if f.stack == "model":
        return None if f.agent is not None else ("model", "concat(provider, '/', model)")
    if f.stack == "project":
        return _totals_grouping(f), "toString(project_id)"
    return "agent", "toString(agent_name)" if f.project is not None else "concat(project_id, '/', agent_name)"


def _top_series(inner: str, value: str) -> str:
    """Keep the MAX_SERIES largest series of (bucket, name, value) rows; sum the rest as OTHER_SERIES."""
    return (
        f"SELECT bucket, if(rank <= {MAX_SERIES}, name, {quote_string(OTHER_SERIES)}) AS series, sum({value}) AS {value} "
        f"FROM (SELECT bucket, name, {value}, dense_rank() OVER (ORDER BY total DESC, name) AS rank "
        f"FROM (SELECT bucket, name, {value}, sum({value}) OVER (PARTITION BY name) AS total FROM ({inner}))) "
        "GROUP BY bucket, series ORDER BY bucket, series"
    )


def cost_over_time_panel(database: str, f: DashboardFilter) -> Panel:
    """Cost per bucket, stacked by model, project or agent (the largest MAX_SERIES, the rest summed)."""
    columns = ("bucket", "series", "cost_usd")
    stacked = _series_expression(f)
    if stacked is None:
        return Panel("cost_over_time", columns, None, "by model is not available for one agent: windows group models by project")
    grouping, expression = stacked
    inner = (
        f"SELECT {_bucket(f)}, {expression} AS name, sum(cost_usd) AS cost_usd "
        f"FROM {quote_identifier(database)}.usage_window_cells FINAL{_windows_where(f, grouping, bucketed=True)} GROUP BY bucket, name"
    )
    return Panel("cost_over_time", columns, _top_series(inner, "cost_usd") + _FINAL_SETTINGS)


def tokens_over_time_panel(database: str, f: DashboardFilter) -> Panel:
    """Input, output, cache-read and reasoning tokens per bucket."""
    sql = (
        f"SELECT {_bucket(f)}, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "sum(cache_read_tokens) AS cache_read_tokens, sum(reasoning_tokens) AS reasoning_tokens "
        f"FROM {quote_identifier(database)}.usage_window_cells FINAL{_windows_where(f, _totals_grouping(f), bucketed=True)} "
        f"GROUP BY bucket ORDER BY bucket{_FINAL_SETTINGS}"
    )
    return Panel("tokens_over_time", ("bucket", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"), sql)


# panel -> (grouping, key columns); None grouping: the totals grouping of the filter.
_TOP: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "projects": (None, ("project_id",)),
    "agents": ("agent", ("project_id", "agent_name")),
    "sessions": ("session", ("project_id", "session_id")),
    "models": ("model", ("provider", "model")),
}


def top_panel(database: str, f: DashboardFilter, kind: str) -> Panel:
    """The TOP_ROWS largest projects, agents, sessions or models by cost, with their totals."""
    grouping, keys = _TOP[kind]
    name = f"top_{kind}"
    columns = (*keys, *TOTAL_FIELDS)
    if grouping in ("session", "model") and f.agent is not None:
        return Panel(name, columns, None, f"{kind} are not available for one agent: windows group {kind} by project")
    key_list = ", ".join(keys)
    sql = (
        f"SELECT {key_list}, {_TOTALS} FROM {quote_identifier(database)}.usage_window_cells FINAL"
        f"{_windows_where(f, grouping or _totals_grouping(f))} GROUP BY {key_list} "
        f"ORDER BY cost_usd DESC, {key_list} LIMIT {TOP_ROWS}{_FINAL_SETTINGS}"
    )
    return Panel(name, columns, sql)


def unpriced_models_panel(database: str, f: DashboardFilter) -> Panel:
    """Every model with unpriced events in the range (project-wide: windows group models by project)."""
    sql = (
        "SELECT provider, model, sum(unpriced_events) AS unpriced_events, sum(events) AS events "
        f"FROM {quote_identifier(database)}.usage_window_cells FINAL{_windows_where(f, 'model', agent=False)} "
        f"GROUP BY provider, model HAVING unpriced_events > 0 ORDER BY unpriced_events DESC, provider, model{_FINAL_SETTINGS}"
    )
    return Panel("unpriced_models", ("provider", "model", "unpriced_events", "events"), sql)


def _tools_where(f: DashboardFilter) -> str:
    return " WHERE " + " AND ".join(_scope(f))


def tools_panel(database: str, f: DashboardFilter) -> Panel:
    """Per tool: calls, errors, average and p95 duration (as `report --group-by tool`, across projects)."""
    sql = (
        f"SELECT tool_name, {', '.join(TOOL_FIELDS)} FROM (SELECT tool_name, {_TOOL_VALUES} "
        f"FROM {quote_identifier(database)}.usage_tool_windows FINAL{_tools_where(f)} GROUP BY tool_name) "
        f"ORDER BY calls DESC, tool_name LIMIT 20{_FINAL_SETTINGS}"
    )
    return Panel("tools", ("tool_name", *TOOL_FIELDS), sql)


def tools_over_time_panel(database: str, f: DashboardFilter) -> Panel:
    """Tool calls per bucket, stacked by tool (the largest MAX_SERIES, the rest summed)."""
    inner = (
        f"SELECT {_bucket(f)}, toString(tool_name) AS name, sum(calls) AS calls "
        f"FROM {quote_identifier(database)}.usage_tool_windows FINAL{_tools_where(f)} GROUP BY bucket, name"
    )
    return Panel("tools_over_time", ("bucket", "series", "calls"), _top_series(inner, "calls") + _FINAL_SETTINGS)


def tool_errors_by_agent_panel(database: str, f: DashboardFilter) -> Panel:
    """Which agent's calls of which tool fail, most errors first."""
    sql = (
        "SELECT project_id, agent_name, tool_name, sum(calls) AS calls, sum(errors) AS errors "
        f"FROM {quote_identifier(database)}.usage_tool_windows FINAL{_tools_where(f)} "
        "GROUP BY project_id, agent_name, tool_name HAVING errors > 0 "
        f"ORDER BY errors DESC, project_id, agent_name, tool_name LIMIT 20{_FINAL_SETTINGS}"
    )
    return Panel("tool_errors_by_agent", ("project_id", "agent_name", "tool_name", "calls", "errors"), sql)


FAILURE_COLUMNS = ("timestamp", "project_id", "agent_name", "session_id", "provider", "model", "error", "tool_calls")


def recent_failures_panel(database: str, f: DashboardFilter) -> Panel:
    """The latest failed calls (an `error`, or a tool call with one) with their error texts.

    The only panel that reads billed events: error texts live nowhere else. Bounded to one
    project (the table's key prefix) and the last FAILURES_MAX_SECONDS of the range.
    """
    if f.project is None:
        return Panel("recent_failures", FAILURE_COLUMNS, None, "choose a project to list its failures", reads_events=True)
    since = max(f.since, f.until - FAILURES_MAX_SECONDS)
    conditions = [
        f"project_id = {quote_string(f.project)}",
        *([f"agent_name = {quote_string(f.agent)}"] if f.agent is not None else []),
        f"timestamp >= toDateTime64({int(since)}, 6, 'UTC')",
        f"timestamp < toDateTime64({int(f.until)}, 6, 'UTC')",
        "(error IS NOT NULL OR position(tool_calls, '\"error\":\"') > 0)",
    ]
    sql = (
        f"SELECT {', '.join(FAILURE_COLUMNS)} FROM {quote_identifier(database)}.usage_events "
        f"WHERE {' AND '.join(conditions)} ORDER BY timestamp DESC, event_id LIMIT 1 BY project_id, event_id "
        f"LIMIT {FAILURES_LIMIT}"
    )
    return Panel("recent_failures", FAILURE_COLUMNS, sql, reads_events=True)


def choices_panel(database: str, f: DashboardFilter) -> Panel:
    """The projects and agents with usage in the range, for the filter menus (no FINAL: names only)."""
    # Not narrowed by the project or agent chosen: the menus must offer the others too.
    pieces = level_pieces(f.since, f.until, cell_levels(f.window_seconds))
    conditions = ["grouping = 'agent'", pieces_condition(pieces)]
    sql = (
        f"SELECT DISTINCT project_id, agent_name FROM {quote_identifier(database)}.usage_window_cells "
        f"WHERE {' AND '.join(conditions)} ORDER BY project_id, agent_name LIMIT 1000"
    )
    return Panel("choices", ("project_id", "agent_name"), sql)
