"""Services embed `producers` and `schemas`: they must work without the stream app's heavy deps."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    HEAVY = ("faust", "mode", "chdb", "clickhouse_connect", "genai_prices", "stream_app")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HEAVY:
                raise ImportError(f"blocked heavy import: {name}")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_schemas_and_producers_import_without_stream_dependencies() -> None:
    result = run_blocked(
        """
        import producers, schemas
        from producers import KafkaPublisher, pack_batches
        from schemas import UsageTrackingEvent
        publisher = KafkaPublisher("127.0.0.1:9", "t")
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_blocker_really_blocks() -> None:
    result = run_blocked("import stream_app.core.pricing")
    assert result.returncode != 0
    assert "blocked heavy import" in result.stderr
