"""Headless Debian chromium for the dashboard tests, driven by playwright (never its own browser build).

Where chromium is missing the browser tests skip, except under CI (`CI=true`), where
scripts/setup.sh must have installed it: there a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str:
    found = next((p for p in CHROMIUM_PATHS if os.path.exists(p)), None) or shutil.which("chromium")
    if found is None:
        message = "Debian's chromium is not installed (scripts/setup.sh installs it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A playwright Browser on the system chromium; closed (and its process ended) on exit."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def wait_until_drawn(page: Any, timeout_ms: int = 30_000) -> None:
    """Until the page has drawn the latest data it asked for (its body says `data-state=ready`)."""
    page.wait_for_selector("body[data-state=ready]", timeout=timeout_ms)


def cards(page: Any) -> dict[str, str]:
    """Every summary card's exact value, by its `data-metric`."""
    return page.eval_on_selector_all("#cards [data-metric]", "els => Object.fromEntries(els.map(e => [e.dataset.metric, e.dataset.value]))")


def chart_series(page: Any, chart_id: str) -> list[str]:
    """The series a chart draws (one `<g data-series>` each), in drawing order."""
    return page.eval_on_selector_all(f"#{chart_id} [data-series]", "els => els.map(e => e.dataset.series)")
