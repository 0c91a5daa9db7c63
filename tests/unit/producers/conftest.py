"""Fixtures for the producer SDK's unit tests: captured events, a fake provider, clean global state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from producers.tracking import configure_usage_tracking, reset_usage_tracking
from schemas import UsageTrackingEvent
from tests.unit.producers.provider_fakes import FakeProviderServer

SOURCE = "unit-test-service"
PROJECT = "proj-unit"


@pytest.fixture(autouse=True)
def _no_tracking_left_over() -> Iterator[None]:
    """Global tracking configuration never leaks from one test into the next."""
    reset_usage_tracking()
    yield
    reset_usage_tracking()


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[UsageTrackingEvent]:
    """Tracking configured with a handler that collects every event, publishing nothing."""
    monkeypatch.delenv("USAGE_TRACKING_DISABLED", raising=False)
    collected: list[UsageTrackingEvent] = []
    configure_usage_tracking(collected.append, destination=None, source=SOURCE, project_id=PROJECT)
    return collected


@pytest.fixture
def fake_provider() -> Iterator[FakeProviderServer]:
    """A local fake of the OpenAI and Anthropic APIs (127.0.0.1, scripted replies)."""
    with FakeProviderServer() as server:
        yield server
