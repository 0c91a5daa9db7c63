"""Fixtures for the producer SDK against a real broker: fake provider API, clean tracking state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from producers.tracking import reset_usage_tracking
from tests.unit.producers.provider_fakes import FakeProviderServer


@pytest.fixture(autouse=True)
def _no_tracking_left_over() -> Iterator[None]:
    reset_usage_tracking()
    yield
    reset_usage_tracking()


@pytest.fixture
def fake_provider() -> Iterator[FakeProviderServer]:
    """A local fake of the OpenAI and Anthropic APIs (127.0.0.1, scripted replies)."""
    with FakeProviderServer() as server:
        yield server
