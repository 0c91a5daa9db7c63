"""Pricing status in the store, `prices missing|compare` and `reprice`, on the real engine (chDB).

Prices by hand (USD per million tokens): gpt-4o $2.50 in, $1.25 cached, $10 out, so
1,000 in (200 cached) + 100 out = 0.00325; gpt-4o-mini $0.15 in / $0.60 out, no
cache-write price, so 1,000 in (400 cache writes) + 100 out = 0.00021 (partial). The
private fine-tune has no catalog price until the price file gives it $1 in / $4 out:
1,000 in + 500 out = 0.003.
"""

from __future__ import annotations

import itertools
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from stream_app.core.decode import MessageOrigin
from stream_app.core.price_overrides import parse_price_overrides
from stream_app.core.pricing import CatalogPricer
from stream_app.core.repricing import RepriceSummary, reprice_rows
from stream_app.core.rows import EVENT_COLUMNS
from stream_app.sink.queries import EventScope, ReportQuery, reprice_page_sql
from stream_app.worker.chunk import ChunkProcessor, RetryPolicy
from stream_app.worker.metrics import WorkerMetrics
from tests.factories import make_event
from tests.integration.pricing.conftest import WINDOW

pytestmark = pytest.mark.integration

W = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SCOPE = EventScope(since=W - timedelta(hours=1), until=W + timedelta(hours=1))
PRICE_FILE = textwrap.dedent(
    """\
    [[override]]
    name = "acme-support-ft"
    provider = "openai"
    model = "ft:acme-support"
    input_mtok = "1"
    output_mtok = "4"
    """
)
_offsets = itertools.count(1)


def call(project: str, model: str, at: datetime, *, provider: str = "openai", provider_cost: str | None = None, **usage: int):
    return make_event(
        project_id=project, provider=provider, model=model, timestamp=at, provider_cost=provider_cost,
        usage={"cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0, **usage},
    )


def traffic() -> list:
    gpt4o = {"input_tokens": 1_000, "cache_read_tokens": 200, "output_tokens": 100}
    return [
        call("acme", "gpt-4o", W + timedelta(seconds=1), **gpt4o),
        call("acme", "gpt-4o", W + timedelta(seconds=2), provider_cost="0.004", **gpt4o),
        call("acme", "gpt-4o", W + timedelta(seconds=61), **gpt4o),
        call("acme", "ft:acme-support", W + timedelta(seconds=3), input_tokens=1_000, output_tokens=500),
        call("acme", "ft:acme-support", W + timedelta(seconds=62), input_tokens=1_000, output_tokens=500),
        call("acme", "openai/gpt-4o:nitro", W + timedelta(seconds=4), provider="openrouter", provider_cost="0.0042",
             input_tokens=1_000, output_tokens=100),
        call("acme", "gpt-4o-mini", W + timedelta(seconds=5), input_tokens=1_000, cache_write_tokens=400, output_tokens=100),
        call("globex", "ft:acme-support", W + timedelta(seconds=125), input_tokens=1_000, output_tokens=500),
        # Outside the scope: never repriced.
        call("globex", "ft:acme-support", W + timedelta(hours=2), input_tokens=1_000, output_tokens=500),
    ]


def write(sink, events, pricer=None) -> None:
    """Each event its own message, through the worker's chunk processor."""
    messages = [(e.model_dump_json().encode(), MessageOrigin("t", 0, next(_offsets), e.project_id.encode())) for e in events]
    ChunkProcessor(
        sink, WorkerMetrics(), window_seconds=WINDOW, max_future_skew=timedelta(days=3650), consumer_group="test",
        retry=RetryPolicy(0.01, 0.05), price=(pricer or CatalogPricer()).price,
    ).process(messages)


def costs(sink) -> dict[str, str]:
    return {r["project_id"]: r["cost_usd"] for r in sink.report(ReportQuery("project"))}


def project_windows(sink) -> dict[tuple[str, datetime], tuple]:
    rows = sink.query_rows(
        "SELECT project_id, window_start, sum(events), toString(sum(cost_usd)), sum(unpriced_events) "
        "FROM usage.usage_window_cells FINAL WHERE grouping = 'project' AND level = 60 GROUP BY project_id, window_start "
        "ORDER BY project_id, window_start"
    )
    return {(p, start): (events, Decimal(cost), unpriced) for p, start, events, cost, unpriced in rows}


def windows_from_events(sink) -> dict[tuple[str, datetime], tuple]:
    rows = sink.query_rows(
        "SELECT project_id, window_start, count(), toString(sum(cost_usd)), countIf(price_status != 'priced') "
        "FROM usage.usage_events FINAL GROUP BY project_id, window_start ORDER BY project_id, window_start"
    )
    return {(p, start): (events, Decimal(cost), unpriced) for p, start, events, cost, unpriced in rows}


@pytest.fixture
def stored(open_sink):
    sink = open_sink()
    write(sink, traffic())
    return sink


def test_every_row_says_how_it_was_priced(stored):
    rows = stored.query_rows(
        "SELECT model, price_status, toString(cost_usd), price_source, catalog_model, price_detail, "
        "toString(provider_cost_usd) FROM usage.usage_events FINAL WHERE timestamp < '2026-11-22 12:00:06' ORDER BY timestamp"
    )

    assert [(m, s, Decimal(c), src.split(" ")[0], cat) for m, s, c, src, cat, _, _ in rows] == [
        ("gpt-4o", "priced", Decimal("0.00325"), "genai-prices", "gpt-4o"),
        ("gpt-4o", "priced", Decimal("0.00325"), "genai-prices", "gpt-4o"),
        ("ft:acme-support", "unpriced", Decimal(0), "genai-prices", ""),
        ("openai/gpt-4o:nitro", "provider_reported", Decimal("0.0042"), "provider_cost", ""),
        ("gpt-4o-mini", "partial", Decimal("0.00021"), "genai-prices", "gpt-4o-mini"),
    ]
    details = {m: d for m, _, _, _, _, d, _ in rows}
    assert "has no model 'ft:acme-support'" in details["ft:acme-support"]
    assert details["gpt-4o-mini"] == "no cache_write price: cache-write tokens billed at the input price"
    # provider_cost is kept beside our own cost.
    assert [pc for m, *_, pc in rows if m == "gpt-4o"] == [None, "0.004"]


def test_prices_missing_lists_models_without_a_full_price(stored):
    missing = stored.missing_prices(EventScope())

    assert [(r["provider"], r["model"], r["price_status"], r["events"], r["projects"]) for r in missing] == [
        ("openai", "ft:acme-support", "unpriced", 4, 2),
        ("openai", "gpt-4o-mini", "partial", 1, 1),
        ("openrouter", "openai/gpt-4o:nitro", "provider_reported", 1, 1),
    ]
    ft = missing[0]
    assert (ft["input_tokens"], ft["output_tokens"], ft["cost_usd"], ft["provider_cost_usd"]) == (4_000, 2_000, "0", None)
    assert (ft["first_seen"], ft["last_seen"]) == ("2026-11-22T12:00:03Z", "2026-11-22T14:00:00Z")
    assert missing[2]["provider_cost_usd"] == "0.0042"
    assert [r["model"] for r in stored.missing_prices(EventScope(project="globex"))] == ["ft:acme-support"]
    assert stored.missing_prices(EventScope(since=W + timedelta(hours=3))) == []


def test_prices_compare_puts_our_cost_beside_the_providers(stored):
    assert stored.provider_costs(EventScope()) == [
        # ours 0.00325 vs their 0.004
        {"provider": "openai", "model": "gpt-4o", "events": 1, "cost_usd": "0.00325", "provider_cost_usd": "0.004",
         "difference_usd": "-0.00075", "not_priced_events": 0},
        {"provider": "openrouter", "model": "openai/gpt-4o:nitro", "events": 1, "cost_usd": "0.0042",
         "provider_cost_usd": "0.0042", "difference_usd": "0", "not_priced_events": 1},
    ]


def test_dry_run_shows_the_change_and_writes_nothing(stored):
    before = (costs(stored), stored.query_rows("SELECT count() FROM usage.usage_events"), project_windows(stored))

    summary = stored.reprice(SCOPE, CatalogPricer(parse_price_overrides(PRICE_FILE)), dry_run=True)

    assert (summary.events, summary.changed, summary.windows_recomputed) == (8, 3, 0)
    acme = summary.projects["acme"]
    assert (acme.changed, acme.difference, acme.not_priced_before, acme.not_priced_after) == (2, Decimal("0.006"), 4, 2)
    assert (costs(stored), stored.query_rows("SELECT count() FROM usage.usage_events"), project_windows(stored)) == before


def test_reprice_rewrites_changed_events_and_their_windows_once(stored):
    pricer = CatalogPricer(parse_price_overrides(PRICE_FILE))
    # acme: 3×0.00325 + 0.0042 + 0.00021 = 0.01416, then + 2×0.003; globex in scope: 0 -> 0.003
    assert costs(stored) == {"acme": "0.01416", "globex": "0"}

    first = stored.reprice(SCOPE, pricer, dry_run=False)

    # Three events changed, on two (project, day)s: acme's and globex's day cells are rebuilt.
    assert (first.changed, first.windows_recomputed) == (3, 2)
    assert costs(stored) == {"acme": "0.02016", "globex": "0.003"}  # the globex event outside the scope stays unpriced
    assert project_windows(stored) == windows_from_events(stored)
    assert [r["model"] for r in stored.missing_prices(SCOPE)] == ["gpt-4o-mini", "openai/gpt-4o:nitro"]
    ((source,),) = stored.query_rows(
        "SELECT DISTINCT price_source FROM usage.usage_events FINAL WHERE model = 'ft:acme-support' AND project_id = 'acme'"
    )
    assert source == "override:prices.toml#acme-support-ft"

    windows_after_first = project_windows(stored)
    rows_after_first = stored.query_rows("SELECT count() FROM usage.usage_events")
    second = stored.reprice(SCOPE, pricer, dry_run=False)

    assert (second.changed, second.windows_recomputed) == (0, 0)
    assert stored.query_rows("SELECT count() FROM usage.usage_events") == rows_after_first  # nothing inserted
    assert project_windows(stored) == windows_after_first
    assert costs(stored) == {"acme": "0.02016", "globex": "0.003"}


def test_reprice_of_one_project_leaves_the_others(stored):
    summary = stored.reprice(
        EventScope(project="globex", since=SCOPE.since, until=SCOPE.until), CatalogPricer(parse_price_overrides(PRICE_FILE)), dry_run=False
    )

    assert (list(summary.projects), summary.changed) == (["globex"], 1)
    assert costs(stored) == {"acme": "0.01416", "globex": "0.003"}


def test_small_pages_give_the_same_result(stored):
    summary = stored.reprice(SCOPE, CatalogPricer(parse_price_overrides(PRICE_FILE)), dry_run=False, page_size=2)

    assert (summary.events, summary.changed) == (8, 3)
    assert costs(stored) == {"acme": "0.02016", "globex": "0.003"}


def test_windows_left_behind_by_an_interrupted_run_are_recomputed(stored):
    pricer = CatalogPricer(parse_price_overrides(PRICE_FILE))
    # An earlier run rewrote the events, then stopped before rewriting their windows.
    rows = stored.query_rows(reprice_page_sql("usage", SCOPE, None, 1_000))
    changed = reprice_rows(rows, pricer, generation=1, summary=RepriceSummary(dry_run=False))
    stored.client.insert("usage_events", changed, column_names=list(EVENT_COLUMNS), database="usage")
    assert project_windows(stored) != windows_from_events(stored)

    summary = stored.reprice(SCOPE, pricer, dry_run=False)

    assert (summary.changed, summary.windows_recomputed) == (0, 2)
    assert project_windows(stored) == windows_from_events(stored)


def test_a_reprice_racing_a_worker_replay_keeps_the_new_price(stored):
    # The worker replays an old message (its offsets were not committed) after a reprice:
    # it rewrites that message's rows at generation 0, which lose to the reprice's.
    pricer = CatalogPricer(parse_price_overrides(PRICE_FILE))
    stored.reprice(SCOPE, pricer, dry_run=False)
    after = (costs(stored), project_windows(stored))
    ft = [e for e in traffic() if e.model == "ft:acme-support"][:1]
    (offset,) = stored.query_rows(
        "SELECT kafka_offset FROM usage.usage_events FINAL WHERE model = 'ft:acme-support' AND project_id = 'acme' "
        "ORDER BY timestamp LIMIT 1"
    )[0]
    (value,) = stored.query_rows(
        f"SELECT event_id FROM usage.usage_events FINAL WHERE kafka_offset = {offset}"
    )[0]
    replay = ft[0].model_copy(update={"event_id": value})
    ChunkProcessor(
        stored, WorkerMetrics(), window_seconds=WINDOW, max_future_skew=timedelta(days=3650), consumer_group="test",
        price=CatalogPricer().price,  # a worker still on the old prices
    ).process([(replay.model_dump_json().encode(), MessageOrigin("t", 0, offset, b"acme"))])

    assert (costs(stored), project_windows(stored)) == after
