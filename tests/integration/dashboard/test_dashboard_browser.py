"""The dashboard in a real browser (Debian's headless chromium) over a real worker and store.

One worker (real Kafka, the embedded store, USAGE_ADMIN_TOKEN set) bills a known set of
events, some re-sent; every expectation is computed here from those events alone (cost by
genai-prices' own `calc_price`), never read back from the pipeline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price

from schemas import ToolCall, UsageTrackingEvent
from stream_app.broker.local import find_free_port
from stream_app.sink.queries import format_money
from stream_app.worker.process import WorkerProcess
from tests.factories import varied_events
from tests.integration.dashboard.browser import cards, chart_series, headless_chromium, wait_until_drawn
from tests.integration.pipeline_harness import Pipeline, catalog_cost, wait_until_billed

TOKEN = "dashboard-test-token-0123456789abcdefghijklmnop"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOOLS = ("search_kb", "run_sql", "fetch_url")


def with_tools(events: list[UsageTrackingEvent]) -> list[UsageTrackingEvent]:
    """Give each event 0-2 tool calls (some failing, some untimed) and fail every ninth call."""
    out = []
    for i, e in enumerate(events):
        calls = [
            ToolCall(
                name=TOOLS[(i + k) % 3],
                duration_ms=None if (i + k) % 5 == 0 else float(10 + (i * 7 + k * 13) % 300),
                error="timeout" if (i + k) % 7 == 0 else None,
            )
            for k in range(i % 3)
        ]
        out.append(e.model_copy(update={"tool_calls": calls, "error": "rate_limited" if i % 9 == 0 else None}))
    return out


def is_priced(e: UsageTrackingEvent) -> bool:
    u = e.usage
    try:
        calc_price(CatalogUsage(input_tokens=u.input_tokens, output_tokens=u.output_tokens), model_ref=e.model,
                   provider_id=e.provider, genai_request_timestamp=e.timestamp)
    except LookupError:
        return False
    return True


def expected_cards(events: list[UsageTrackingEvent], project: str | None = None) -> dict[str, str]:
    """The cards' exact values, from the distinct events themselves."""
    distinct = [e for e in {(e.project_id, e.event_id): e for e in events}.values() if project in (None, e.project_id)]
    tokens = {n: sum(getattr(e.usage, n) for e in distinct) for n in
              ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")}
    share = lambda a, b: format_money((Decimal(a) / Decimal(b)).quantize(Decimal("0.000001")))  # noqa: E731
    return {
        "cost_usd": format_money(sum((catalog_cost(e) for e in distinct), Decimal(0))),
        "events": str(len(distinct)),
        **{n: str(v) for n, v in tokens.items()},
        "cache_read_share": share(tokens["cache_read_tokens"], tokens["input_tokens"]),
        "reasoning_share": share(tokens["reasoning_tokens"], tokens["output_tokens"]),
        "failed_events": str(sum(e.error is not None for e in distinct)),
        "unpriced_events": str(sum(not is_priced(e) for e in distinct)),
        "tool_calls": str(sum(len(e.tool_calls) for e in distinct)),
    }


def expected_tools(events: list[UsageTrackingEvent]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (project, tool): calls, errors, mean and p95 duration (p95 as ClickHouse's quantileExact)."""
    found: dict[tuple[str, str], list[ToolCall]] = {}
    for e in {(e.project_id, e.event_id): e for e in events}.values():
        for call in e.tool_calls:
            found.setdefault((e.project_id, call.name), []).append(call)
    out = {}
    for key, calls in found.items():
        timed = sorted(c.duration_ms for c in calls if c.duration_ms is not None)
        out[key] = {
            "calls": len(calls),
            "errors": sum(c.error is not None for c in calls),
            "avg_duration_ms": sum(timed) / len(timed) if timed else None,
            "p95_duration_ms": timed[min(len(timed) - 1, int(0.95 * len(timed)))] if timed else None,
        }
    return out


@dataclass
class Served:
    pipeline: Pipeline
    worker: WorkerProcess
    events: list[UsageTrackingEvent]

    def data(self, **params: str) -> dict[str, Any]:
        return self.worker.get("/dashboard/data", **params)


@pytest.fixture(scope="module")
def served(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    pipeline = Pipeline.fresh(kafka_bootstrap, tmp_path_factory.mktemp("dashboard"))
    events = with_tools(varied_events(70, seed=5))
    with pipeline.worker(USAGE_ADMIN_TOKEN=TOKEN) as worker:
        pipeline.publish(events)
        pipeline.publish(events[:10])  # a producer's retry: billed once
        wait_until_billed(pipeline, worker, len(events))
        yield Served(pipeline, worker, events)


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    # After `served`: sync playwright runs an event loop in this thread, and publishing needs its own.
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    context = browser.new_context(extra_http_headers=AUTH, viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"the page raised: {errors}"


def open_dashboard(page: Any, served: Served, query: str = "range=1h&live=0") -> None:
    page.goto(f"{served.worker.url}/dashboard?{query}")
    wait_until_drawn(page)


def test_cards_equal_independent_totals_and_the_report(page: Any, served: Served) -> None:
    open_dashboard(page, served)
    shown = cards(page)
    assert shown == expected_cards(served.events)
    # The report over the same whole windows says the same, to the last digit.
    f = served.data(range="1h")["filter"]
    report = served.worker.report("project", since=f["since"], until=f["until"])
    assert shown["cost_usd"] == format_money(sum((Decimal(r["cost_usd"]) for r in report), Decimal(0)))
    for name in ("events", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens", "unpriced_events"):
        assert shown[name] == str(sum(r[name] for r in report)), name


def test_charts_draw_the_expected_series(page: Any, served: Served) -> None:
    distinct = list({(e.project_id, e.event_id): e for e in served.events}.values())
    open_dashboard(page, served)
    assert sorted(chart_series(page, "chart-cost")) == sorted({f"{e.provider}/{e.model}" for e in distinct})
    assert chart_series(page, "chart-tokens") == ["input", "output", "cache read", "reasoning"]
    assert chart_series(page, "chart-tools") == ["calls", "errors"]
    assert sorted(chart_series(page, "chart-tools-time")) == sorted(TOOLS)
    assert page.locator("#unpriced-list li").all_text_contents() != []  # the catalog-less model is flagged

    page.click("#stack-switch button[data-stack=project]")
    page.wait_for_function("() => document.querySelector('#chart-cost svg').getAttribute('aria-label').endsWith('project')")
    wait_until_drawn(page)
    assert sorted(chart_series(page, "chart-cost")) == sorted({e.project_id for e in distinct})
    page.click("#stack-switch button[data-stack=agent]")
    page.wait_for_function("() => document.querySelector('#chart-cost svg').getAttribute('aria-label').endsWith('agent')")
    wait_until_drawn(page)
    # 12 agents: the 8 costliest are drawn, the rest summed as one "(other)" series.
    by_agent: dict[str, Decimal] = {}
    for e in distinct:
        by_agent[f"{e.project_id}/{e.agent_name}"] = by_agent.get(f"{e.project_id}/{e.agent_name}", Decimal(0)) + catalog_cost(e)
    largest = sorted(by_agent, key=lambda name: (-by_agent[name], name))[:8]
    assert sorted(chart_series(page, "chart-cost")) == sorted([*largest, "(other)"])


def test_project_filter_narrows_every_card_and_csv_exports_what_is_shown(page: Any, served: Served) -> None:
    project = served.events[1].project_id
    open_dashboard(page, served)
    page.select_option("#f-project", project)
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('project') === {json.dumps(project)}")
    page.wait_for_function("() => document.body.dataset.state === 'ready'")
    page.wait_for_selector(".table[data-panel=recent_failures] table")
    shown = cards(page)
    assert shown == expected_cards(served.events, project)
    failures = page.locator(".table[data-panel=recent_failures] tbody tr").count()
    assert failures == sum(
        1 for e in {(e.project_id, e.event_id): e for e in served.events}.values()
        if e.project_id == project and (e.error or any(c.error for c in e.tool_calls))
    )
    with page.expect_download() as download:
        page.click("#export-csv")
    text = Path(download.value.path()).read_text()
    assert f"cost_usd,{shown['cost_usd']}" in text and f"events,{shown['events']}" in text
    assert "# top_agents" in text and "# tools" in text


def test_tool_analytics_equal_independent_tool_totals(served: Served) -> None:
    expected = expected_tools(served.events)
    report = {(r["project_id"], r["tool_name"]): r for r in served.worker.report("tool")}
    assert report.keys() == expected.keys()
    for key, want in expected.items():
        got = report[key]
        assert (got["calls"], got["errors"]) == (want["calls"], want["errors"]), key
        assert got["avg_duration_ms"] == pytest.approx(want["avg_duration_ms"]), key
        assert got["p95_duration_ms"] == want["p95_duration_ms"], key
    # The panel sums the same rows across projects.
    panel = served.data(range="1h")["panels"]["tools"]
    rows = {r[0]: dict(zip(panel["columns"], r)) for r in panel["rows"]}
    for tool in TOOLS:
        assert rows[tool]["calls"] == sum(v["calls"] for (_, t), v in expected.items() if t == tool)
        assert rows[tool]["errors"] == sum(v["errors"] for (_, t), v in expected.items() if t == tool)


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/data?range=1h", "/dashboard/assets/dashboard.js"])
def test_dashboard_needs_the_admin_token(served: Served, path: str) -> None:
    assert status_of(served.worker.url + path) == 401
    assert status_of(served.worker.url + path, {"Authorization": "Bearer not-the-token"}) == 401
    assert status_of(served.worker.url + path, AUTH) == 200
    assert status_of(served.worker.url + "/health") == 200


def test_dashboard_command_reads_through_the_worker_holding_the_store(served: Served) -> None:
    port = find_free_port()
    env = {**os.environ, **served.pipeline.env(), "USAGE_ADMIN_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "stream_app", "dashboard", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        banner = ""
        while "dashboard: http" not in banner:
            line = process.stdout.readline()
            assert line, f"dashboard exited: {banner}"
            banner += line
        assert "reading the worker at" in banner
        url = f"http://127.0.0.1:{port}"
        assert status_of(f"{url}/dashboard/data?range=1h") == 401
        request = urllib.request.Request(f"{url}/dashboard/data?range=1h", headers=AUTH)
        with urllib.request.urlopen(request, timeout=30) as response:
            through_command = json.loads(response.read())
        assert through_command["cards"] == served.data(range="1h")["cards"]
        assert {c["metric"]: c["value"] for c in through_command["cards"]} == expected_cards(served.events)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
