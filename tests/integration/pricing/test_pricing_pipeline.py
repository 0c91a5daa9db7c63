"""Pricing end to end: broker -> worker (with a price file) -> ClickHouse -> `prices missing` / `reprice` / `report`.

Real Apache Kafka broker (session fixture), a real worker process with
USAGE_PRICE_OVERRIDES_FILE, the embedded store, and the CLI as a user runs it, first
while the worker holds the store (the commands ask it over HTTP), then after it stopped
(they open the store). Expected costs are computed here: catalog prices by genai-prices'
own `calc_price`, override prices by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price

from schemas import UsageTrackingEvent
from stream_app.errors import PipelineError
from tests.factories import make_event
from tests.integration.pipeline_harness import Pipeline, both_stores

pytestmark = pytest.mark.integration

# Runs the CLI with the pricing commands registered, whether or not stream_app.cli lists them yet.
CLI = """\
import sys
import stream_app.cli as cli
extra = ("stream_app.cli.prices_cmd", "stream_app.cli.reprice_cmd")
cli.COMMAND_MODULES = tuple(cli.COMMAND_MODULES) + tuple(m for m in extra if m not in cli.COMMAND_MODULES)
sys.exit(cli.main(sys.argv[1:]))
"""


def run_cli(pipeline: Pipeline, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env={**os.environ, **pipeline.env(**env)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def cli_json(pipeline: Pipeline, *args: str, **env: str) -> Any:
    result = run_cli(pipeline, *args, "--format", "json", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


NOW = datetime.now(UTC).replace(microsecond=0)
CONTRACT_START = NOW - timedelta(hours=1)
PRICE_FILE = textwrap.dedent(
    f"""\
    # gpt-4o is cheaper for everyone from one hour ago on.
    [[override]]
    name = "gpt-4o-contract"
    provider = "openai"
    model = "gpt-4o"
    effective_from = {CONTRACT_START.isoformat().replace("+00:00", "Z")}
    input_mtok = "2"
    cache_read_mtok = "0.5"
    output_mtok = "8"

    # The EU deployment of gpt-4o on Azure.
    [[alias]]
    provider = "azure"
    model = "prod-gpt4o-eu"
    catalog_model = "gpt-4o"
    """
)
FINE_TUNE = textwrap.dedent(
    """
    # Added after `prices missing` showed it.
    [[override]]
    name = "support-ft"
    provider = "openai"
    model = "ft:acme-support"
    input_mtok = "1"
    output_mtok = "4"
    """
)


def usage(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0, reasoning: int = 0) -> dict[str, int]:
    return {
        "input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write, "reasoning_tokens": reasoning,
    }


def traffic() -> list[UsageTrackingEvent]:
    events = []
    for i in range(40):
        project = ("alpha", "beta")[i % 2]
        before_contract = i % 4 < 2
        at = NOW - (timedelta(minutes=90) if before_contract else timedelta(minutes=10)) + timedelta(seconds=i)
        events += [
            make_event(project_id=project, provider="openai", model="gpt-4o", timestamp=at, usage=usage(2_000 + i, 300, cache_read=500)),
            make_event(project_id=project, provider="azure", model="prod-gpt4o-eu", timestamp=at, usage=usage(1_000, 100 + i, cache_read=200)),
            make_event(
                project_id=project, provider="anthropic", model="claude-sonnet-4-5-20250929", timestamp=at,
                usage=usage(10_000 + i, 800, cache_read=4_000, cache_write=2_000, reasoning=300),
            ),
            make_event(project_id=project, provider="openai", model="ft:acme-support", timestamp=at, usage=usage(1_000 + i, 500)),
        ]
        if i % 5 == 0:
            events.append(
                make_event(
                    project_id=project, provider="openrouter", model="openai/gpt-4o:nitro", timestamp=at,
                    usage=usage(1_000, 100), provider_cost="0.0042",
                )
            )
    return events


def expected_cost(event: UsageTrackingEvent, *, fine_tune_priced: bool) -> Decimal:
    u = event.usage
    if event.model == "ft:acme-support":
        return (Decimal(u.input_tokens) * 1 + Decimal(u.output_tokens) * 4) / 1_000_000 if fine_tune_priced else Decimal(0)
    if event.model == "openai/gpt-4o:nitro":
        return event.provider_cost
    if event.model == "gpt-4o" and event.timestamp >= CONTRACT_START:
        uncached = u.input_tokens - u.cache_read_tokens
        return (Decimal(uncached) * 2 + Decimal(u.cache_read_tokens) * Decimal("0.5") + Decimal(u.output_tokens) * 8) / 1_000_000
    provider, model = ("azure", "gpt-4o") if event.model == "prod-gpt4o-eu" else (event.provider, event.model)
    return calc_price(
        CatalogUsage(
            input_tokens=u.input_tokens, cache_read_tokens=u.cache_read_tokens, cache_write_tokens=u.cache_write_tokens,
            output_tokens=u.output_tokens, output_reasoning_tokens=u.reasoning_tokens,
        ),
        model_ref=model, provider_id=provider, genai_request_timestamp=event.timestamp,
    ).total_price


def expected_project_costs(events: list[UsageTrackingEvent], *, fine_tune_priced: bool) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for e in events:
        totals[e.project_id] += expected_cost(e, fine_tune_priced=fine_tune_priced)
    return dict(totals)


def project_costs(pipeline: Pipeline) -> dict[str, Decimal]:
    return {r["project_id"]: Decimal(r["cost_usd"]) for r in pipeline.report_cli("project")}


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path: Path, store_server: str | None) -> Pipeline:
    return Pipeline.fresh(kafka_bootstrap, tmp_path, server=store_server)


@both_stores
def test_missing_prices_then_an_override_then_reprice(pipeline: Pipeline, tmp_path: Path) -> None:
    price_file = tmp_path / "prices.toml"
    price_file.write_text(PRICE_FILE)
    env = {"USAGE_PRICE_OVERRIDES_FILE": str(price_file)}
    events = traffic()
    fine_tunes = [e for e in events if e.model == "ft:acme-support"]
    scope = ["--since", (NOW - timedelta(hours=3)).isoformat(), "--until", (NOW + timedelta(minutes=1)).isoformat()]

    with pipeline.worker(**env) as worker:
        worker.wait_for_messages(pipeline.publish(events))
        assert project_costs(pipeline) == expected_project_costs(events, fine_tune_priced=False)

        # While the worker holds the store, `prices missing` asks it.
        missing = cli_json(pipeline, "prices", "missing", **env)
        assert [(r["provider"], r["model"], r["price_status"], r["events"]) for r in missing] == [
            ("openai", "ft:acme-support", "unpriced", 40),
            ("openrouter", "openai/gpt-4o:nitro", "provider_reported", 8),
        ]
        assert missing[0]["input_tokens"] == sum(e.usage.input_tokens for e in fine_tunes)
        assert missing[0]["output_tokens"] == 40 * 500
        assert missing[0]["projects"] == 2
        assert run_cli(pipeline, "prices", "missing", "--fail", **env).returncode == 1

        # Someone adds the missing price; a dry run shows the change and writes nothing.
        price_file.write_text(PRICE_FILE + FINE_TUNE)
        dry = cli_json(pipeline, "reprice", *scope, "--dry-run", **env)
        assert (dry["dry_run"], dry["events"], dry["changed"]) == (True, len(events), 40)
        if pipeline.store_url.startswith("chdb://"):  # the CLI asked the worker holding the store
            assert dry["worker_prices_current"] is False  # the worker still bills with the file it started with
        assert project_costs(pipeline) == expected_project_costs(events, fine_tune_priced=False)

        repriced = cli_json(pipeline, "reprice", *scope, **env)
        want = expected_project_costs(events, fine_tune_priced=True)
        assert (repriced["changed"], repriced["windows_recomputed"] > 0) == (40, True)
        assert {p["project_id"]: Decimal(p["cost_after"]) for p in repriced["projects"]} == want
        assert project_costs(pipeline) == want
        assert [r["model"] for r in cli_json(pipeline, "prices", "missing", **env)] == ["openai/gpt-4o:nitro"]

        again = cli_json(pipeline, "reprice", *scope, **env)
        assert (again["changed"], again["windows_recomputed"]) == (0, 0)
        assert project_costs(pipeline) == want

    # With the worker stopped, the same commands open the store themselves.
    assert [r["model"] for r in cli_json(pipeline, "prices", "missing", **env)] == ["openai/gpt-4o:nitro"]
    compare = cli_json(pipeline, "prices", "compare", **env)
    assert [(r["model"], r["difference_usd"]) for r in compare] == [("openai/gpt-4o:nitro", "0")]
    final = cli_json(pipeline, "reprice", *scope, **env)
    assert (final["changed"], final["windows_recomputed"], final.get("worker_prices_current")) == (0, 0, None)
    assert project_costs(pipeline) == want

    table = run_cli(pipeline, "reprice", *scope, "--dry-run", **env)
    assert table.returncode == 0, table.stderr
    assert f"{len(events)} examined, 0 would change" in table.stdout
    assert "dry run: nothing was written" in table.stdout


def test_a_worker_refuses_to_start_with_a_broken_price_file(pipeline: Pipeline, tmp_path: Path) -> None:
    price_file = tmp_path / "prices.toml"
    price_file.write_text('[[override]]\nprovider = "openai"\nmodel = "gpt-4o"\ninput_mtok = 2.5\noutput_mtok = "10"\n')

    with pytest.raises(PipelineError) as caught:
        pipeline.worker(USAGE_PRICE_OVERRIDES_FILE=str(price_file)).start(timeout=60)

    assert "line 4 ([[override]] #1): input_mtok = 2.5 is a float" in str(caught.value)
    checked = run_cli(pipeline, "prices", "check", str(price_file))
    assert checked.returncode == 2
    assert 'write the price as a decimal string: input_mtok = "2.5"' in checked.stderr
