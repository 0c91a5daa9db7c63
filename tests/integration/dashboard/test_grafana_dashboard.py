"""The Grafana dashboard in the repo: its queries run on the real engine and agree with the page.

Grafana's macros are replaced the way the ClickHouse datasource plugin expands them, its
variables by each of their values; then every panel's SQL runs against an embedded store
holding known events, written the way the worker writes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from schemas import ToolCall
from stream_app.core.counting import Copy
from stream_app.core.decode import DecodedEvent, MessageOrigin
from stream_app.core.pricing import price_event
from stream_app.core.rows import build_chunk_rows
from stream_app.sink.clickhouse import ClickHouseSink, parse_clickhouse_url
from stream_app.sink.dashboard_queries import DashboardFilter, summary_panel, tools_panel
from tests.factories import varied_events

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "grafana" / "dashboards" / "usage-pipeline.json"
PROVISIONING = ROOT / "grafana" / "provisioning"
NOW = datetime.now(UTC).replace(microsecond=0)
FROM, TO = int((NOW - timedelta(hours=1)).timestamp()), int(NOW.timestamp()) + 60


def expand(sql: str, variables: dict[str, str], interval_s: int = 60) -> str:
    """Grafana's text as the plugin sends it: time macros for [FROM, TO], variables by value."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({FROM}) AND \1 <= toDateTime({TO})", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)", rf"toStartOfInterval(toDateTime(\1), INTERVAL {interval_s} second)", sql)
    for name, value in variables.items():
        sql = sql.replace(f"${{{name}}}", value)
    assert "$" not in sql, f"an unexpanded macro or variable: {sql}"
    return sql


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseSink]:
    events = [
        e.model_copy(update={"tool_calls": [ToolCall(name=f"tool-{i % 3}", duration_ms=float(i), error="x" if i % 4 == 0 else None)]})
        for i, e in enumerate(varied_events(40, seed=3, now=NOW - timedelta(minutes=5)))
    ]
    copies = [Copy(DecodedEvent(e, MessageOrigin("t", 0, i // 10, e.project_id.encode()), i % 10), 0) for i, e in enumerate(events)]
    path = tmp_path_factory.mktemp("grafana") / "store"
    with ClickHouseSink(parse_clickhouse_url(f"chdb://{path}"), window_seconds=60) as sink:
        sink.write_rows(build_chunk_rows(copies, [], price=price_event, window_seconds=60, ingested_at=NOW))
        yield sink


def variable_values(dashboard: dict, name: str) -> list[str]:
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == name)
    return [o["value"] for o in variable.get("options", [])] or []


def test_every_panel_query_runs_for_every_variable_value(dashboard: dict, store: ClickHouseSink) -> None:
    projects = ["__all", *(r[0] for r in store.query_rows(expand(
        next(v for v in dashboard["templating"]["list"] if v["name"] == "project")["query"], {})))]
    assert len(projects) == 4
    ran = 0
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for project in projects:
                for stack in variable_values(dashboard, "stack"):
                    rows = store.query_rows(expand(target["rawSql"], {"project": project, "stack": stack}))
                    assert rows, f"{panel['title']} ({project}, {stack}) returned nothing"
                    ran += 1
    assert ran == len(dashboard["panels"]) * len(projects) * 3


def test_summary_and_tools_equal_the_built_in_dashboard(dashboard: dict, store: ClickHouseSink) -> None:
    f = DashboardFilter(FROM // 60 * 60, TO // 60 * 60 + 60, 60)
    ours = dict(zip(summary_panel("usage", f).columns, store.query_rows(summary_panel("usage", f).sql)[0]))
    summary = next(p for p in dashboard["panels"] if p["title"].startswith("Summary"))
    row = store.query_rows(expand(summary["targets"][0]["rawSql"], {"project": "__all", "stack": "model"}))[0]
    theirs = dict(zip(("cost_usd", "events", "input_tokens", "output_tokens"), row[:4]))
    assert theirs["cost_usd"] == ours["cost_usd"] and isinstance(theirs["cost_usd"], Decimal)
    assert (theirs["events"], theirs["input_tokens"], theirs["output_tokens"]) == (40, ours["input_tokens"], ours["output_tokens"])

    tools = next(p for p in dashboard["panels"] if p["title"].startswith("Tools:"))
    grafana_tools = {r[0]: (r[1], r[2]) for r in store.query_rows(expand(tools["targets"][0]["rawSql"], {"project": "__all", "stack": "model"}))}
    page_tools = {r[0]: (r[1], r[2]) for r in store.query_rows(tools_panel("usage", f).sql)}
    assert grafana_tools == page_tools and len(page_tools) == 3


def test_panels_read_only_window_tables_through_the_provisioned_datasource(dashboard: dict) -> None:
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "clickhouse.yaml").read_text())["datasources"][0]
    assert datasource["type"] == "grafana-clickhouse-datasource"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"]
        for target in panel["targets"]:
            sql = target["rawSql"]
            assert "usage_events" not in sql and " FINAL " in sql, panel["title"]
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "usage.yaml").read_text())["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in compose["volumes"]
    assert "grafana-clickhouse-datasource" in compose["environment"]["GF_INSTALL_PLUGINS"]
