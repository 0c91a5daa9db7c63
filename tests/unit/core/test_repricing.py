"""`reprice_rows`: stored rows priced again; only what changes is rewritten, with the run's generation."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from stream_app.core.counting import copies_of
from stream_app.core.decode import DecodedEvent, MessageOrigin
from stream_app.core.price_overrides import parse_price_overrides
from stream_app.core.pricing import CatalogPricer
from stream_app.core.repricing import PRICING_COLUMNS, RepriceSummary, reprice_rows
from stream_app.core.rows import EVENT_COLUMNS, build_chunk_rows
from tests.factories import make_event

AT = {name: i for i, name in enumerate(EVENT_COLUMNS)}
T0 = datetime(2026, 11, 22, 12, 0, 10, tzinfo=UTC)
FIRST_WRITE = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)
REPRICED_AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

PRICE_FILE = textwrap.dedent(
    """\
    [[override]]
    name = "private"
    provider = "openai"
    model = "ft:acme-support"
    input_mtok = "1"
    output_mtok = "4"
    """
)


def stored(rows: list[tuple]) -> list[tuple]:
    """Rows as ClickHouse gives them back: naive UTC datetimes, costs at 18 decimal places."""
    out = []
    for row in rows:
        row = list(row)
        for name in ("timestamp", "window_start", "ingested_at"):
            row[AT[name]] = row[AT[name]].astimezone(UTC).replace(tzinfo=None)
        row[AT["cost_usd"]] = row[AT["cost_usd"]].quantize(Decimal("1e-18"))
        out.append(tuple(row))
    return out


def written_rows() -> list[tuple]:
    events = [
        make_event(project_id="acme", model="gpt-4o", timestamp=T0, usage={"input_tokens": 1_000, "cache_read_tokens": 200, "output_tokens": 100}),
        make_event(project_id="acme", model="ft:acme-support", timestamp=T0, usage={"input_tokens": 1_000, "cache_read_tokens": 0, "output_tokens": 500}),
        make_event(project_id="globex", model="ft:acme-support", timestamp=T0 + timedelta(minutes=5), usage={"input_tokens": 2_000, "cache_read_tokens": 0, "output_tokens": 0}),
    ]
    origin = MessageOrigin("llm.usage.events", 0, 1, b"acme")
    chunk = build_chunk_rows(
        copies_of([DecodedEvent(e, origin, i) for i, e in enumerate(events)]), [], price=CatalogPricer(), window_seconds=60, ingested_at=FIRST_WRITE
    )
    return stored(chunk.event_rows)


def test_only_rows_whose_pricing_changes_are_rewritten():
    rows = written_rows()
    summary = RepriceSummary(dry_run=False)

    changed = reprice_rows(rows, CatalogPricer(parse_price_overrides(PRICE_FILE)), generation=3, summary=summary)

    assert sorted((r[AT["project_id"]], r[AT["model"]]) for r in changed) == [("acme", "ft:acme-support"), ("globex", "ft:acme-support")]
    acme = next(r for r in changed if r[AT["project_id"]] == "acme")
    # 1000×1 + 500×4 = 3,000 µ$
    assert [acme[AT[c]] for c in PRICING_COLUMNS] == [Decimal("0.003"), "priced", "override:prices.toml#private", "", "", ""]
    assert acme[AT["price_generation"]] == 3
    assert acme[AT["timestamp"]] == T0  # made explicit UTC again
    # Everything else about the event is as stored.
    original = next(r for r in rows if r[AT["event_id"]] == acme[AT["event_id"]])
    untouched = set(EVENT_COLUMNS) - set(PRICING_COLUMNS) - {"price_generation", "ingested_at", "timestamp", "window_start"}
    assert all(acme[AT[c]] == original[AT[c]] for c in untouched)


def test_the_summary_shows_before_and_after_per_project():
    summary = RepriceSummary(dry_run=True)

    reprice_rows(written_rows(), CatalogPricer(parse_price_overrides(PRICE_FILE)), generation=1, summary=summary)

    acme, globex = summary.projects["acme"], summary.projects["globex"]
    # gpt-4o: 800×2.5 + 200×1.25 + 100×10 = 3,250 µ$, unchanged; the fine-tune was unpriced.
    assert (acme.events, acme.changed, acme.cost_before, acme.cost_after) == (2, 1, Decimal("0.00325"), Decimal("0.00625"))
    assert (acme.not_priced_before, acme.not_priced_after) == (1, 0)
    assert (globex.events, globex.changed, globex.difference) == (1, 1, Decimal("0.002"))
    assert (summary.events, summary.changed) == (3, 2)


def test_repricing_again_changes_nothing():
    pricer = CatalogPricer(parse_price_overrides(PRICE_FILE))
    rows = written_rows()
    changed = reprice_rows(rows, pricer, generation=1, summary=RepriceSummary(dry_run=False))
    by_id = {r[AT["event_id"]]: r for r in rows} | {r[AT["event_id"]]: r for r in stored(changed)}

    again = reprice_rows(list(by_id.values()), pricer, generation=2, summary=RepriceSummary(dry_run=False))

    assert again == []


def test_the_same_prices_change_nothing():
    assert reprice_rows(written_rows(), CatalogPricer(), generation=1, summary=RepriceSummary(dry_run=False)) == []


def test_a_rewritten_row_wins_by_generation_whatever_the_clocks_said():
    rows = written_rows()
    ahead = FIRST_WRITE + timedelta(days=2)  # the stored copy was stamped by a clock running ahead
    rows = [tuple(ahead.replace(tzinfo=None) if i == AT["ingested_at"] else v for i, v in enumerate(r)) for r in rows]

    changed = reprice_rows(rows, CatalogPricer(parse_price_overrides(PRICE_FILE)), generation=7, summary=RepriceSummary(dry_run=False))

    assert {r[AT["price_generation"]] for r in changed} == {7}
    assert {r[AT["ingested_at"]] for r in changed} == {ahead}  # kept as information, never compared
