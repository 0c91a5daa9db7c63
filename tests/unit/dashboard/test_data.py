"""Shaping the dashboard's figures: exact card values, JSON values, the matching report command."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from stream_app.dashboard.data import (
    CARDS,
    dashboard_payload,
    filter_from_params,
    json_value,
    report_command,
    share,
    summary_cards,
)
from stream_app.sink.dashboard_queries import TOTAL_FIELDS, DashboardFilter

SINCE, UNTIL = 1_795_341_600, 1_795_345_200


def totals(**values: object) -> dict:
    return {**dict.fromkeys(TOTAL_FIELDS, 0), **values}


def test_cards_carry_the_exact_values():
    cards = {c["metric"]: c["value"] for c in summary_cards(totals(
        events=3, input_tokens=3000, output_tokens=7, cache_read_tokens=1000, reasoning_tokens=2,
        cost_usd=Decimal("12.345000000000000001"), unpriced_events=1, failed_events=2, tool_calls=5,
    ))}
    assert [c[0] for c in CARDS] == list(cards)
    assert cards["cost_usd"] == "12.345000000000000001"
    assert (cards["events"], cards["input_tokens"], cards["tool_calls"]) == ("3", "3000", "5")
    assert cards["cache_read_share"] == "0.333333"
    assert cards["reasoning_share"] == "0.285714"


def test_shares_of_nothing_are_absent_not_zero():
    cards = {c["metric"]: c["value"] for c in summary_cards(totals())}
    assert cards["cache_read_share"] is None and cards["reasoning_share"] is None
    assert cards["cost_usd"] == "0"
    assert share(1, 3) == "0.333333" and share(2, 2) == "1"


def test_json_values():
    assert json_value(Decimal("0.000001500000000000")) == "0.0000015"
    assert json_value(datetime(2026, 11, 22, 10, 0)) == "2026-11-22T10:00:00Z"
    assert json_value(float("nan")) is None
    assert json_value(7) == 7


def test_report_command_names_the_same_range():
    assert report_command(DashboardFilter(SINCE, UNTIL, 60, project="acme")) == (
        "usage-pipeline report --group-by project --project acme --since 2026-11-22T10:00:00Z --until 2026-11-22T11:00:00Z"
    )
    assert "--group-by agent" in report_command(DashboardFilter(SINCE, UNTIL, 60, agent="coder"))


def test_filter_from_request_parameters():
    now = datetime(2026, 11, 22, 10, 59, 30, tzinfo=UTC)
    f = filter_from_params({"range": "custom", "since": "2026-11-22T10:00:00Z", "until": "2026-11-22T11:00:00Z", "stack": "project"}, now, 60)
    assert (f.since, f.until, f.stack, f.project) == (SINCE, UNTIL, "project", None)
    assert filter_from_params({}, now, 60).bucket_seconds == 900  # default: the last 24 h
    with pytest.raises(ValueError):
        filter_from_params({"range": "custom", "since": "yesterday-ish"}, now, 60)


def test_payload_runs_every_answerable_panel_once():
    asked: list[str] = []

    def run(sql: str) -> list[tuple]:
        asked.append(sql)
        if "SELECT sum(events)" in sql:
            return [(2, 10, 4, 5, 0, 1, Decimal("0.5"), 0, 1, 3)]
        return []

    payload = dashboard_payload(DashboardFilter(SINCE, UNTIL, 60, project="acme", agent="coder"), "custom", "usage", run)
    unavailable = [name for name, panel in payload["panels"].items() if panel["rows"] is None]
    assert sorted(unavailable) == ["cost_over_time", "top_models", "top_sessions"]
    assert len(asked) == len(payload["panels"]) - len(unavailable)
    assert {c["metric"]: c["value"] for c in payload["cards"]}["cost_usd"] == "0.5"
    assert payload["filter"] == {
        "range": "custom", "since": "2026-11-22T10:00:00Z", "until": "2026-11-22T11:00:00Z",
        "bucket_seconds": 60, "project": "acme", "agent": "coder", "stack": "model",
    }
