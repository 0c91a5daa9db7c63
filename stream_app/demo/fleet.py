"""Several demo workers in one consumer group, on one ClickHouse server (`demo --workers N`).

An embedded store can be opened by one process at a time, so with N > 1 the demo starts
a local ClickHouse server of its own (stream_app.clickhouse_server) unless CLICKHOUSE_URL
names a server. The pure parts (merging counters, the progress line) are separate from
the processes so they can be tested on dictionaries.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from stream_app.errors import ConfigurationError, PipelineError
from stream_app.worker.process import WorkerProcess

SUMMED = ("messages", "events_accepted", "sink_retries", "dead_letters_total")


def demo_partitions(workers: int, configured: int) -> int:
    """Partitions for the demo topic: at least two per worker.

    Faust's assignor is sticky: a worker joining a group whose members each hold no more
    than their fair share gets nothing (4 partitions over 3 workers come out 2+2+0).
    """
    return max(configured, 2 * workers)


def merge_stats(stats: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The workers' /stats added up; `dead_letters` merged by reason."""
    merged: dict[str, Any] = {name: sum(int(s.get(name, 0)) for s in stats) for name in SUMMED}
    reasons: Counter[str] = Counter()
    for s in stats:
        reasons.update(s.get("dead_letters", {}))
    merged["dead_letters"] = dict(reasons)
    return merged


def progress_line(stats: list[Mapping[str, Any]], elapsed: float) -> str:
    """One line: per worker its partitions and messages, then the total and the rate."""
    parts = [
        f"w{i + 1} p{','.join(map(str, s.get('partitions', []))) or '-'}: {s.get('messages', 0):,} msgs"
        for i, s in enumerate(stats)
    ]
    merged = merge_stats(stats)
    rate = merged["events_accepted"] / max(elapsed, 1e-6)
    return f"[demo] {' | '.join(parts)} | {merged['events_accepted']:,} events written (~{rate:,.0f}/s)"


def store_server_url(
    settings_url: str | None, home: Path, cleanup: ExitStack, say: Callable[[str], None]
) -> str:
    """The ClickHouse server the workers share: the configured one, or a fresh local one
    stopped (with nothing left running) when `cleanup` unwinds."""
    from stream_app.clickhouse_server import LocalClickHouseServer

    if settings_url:
        if settings_url.startswith("chdb:"):
            raise ConfigurationError(
                "CLICKHOUSE_URL names an embedded store, which one process opens at a time: "
                "for demo --workers N > 1 unset it (the demo starts a local server) or set "
                "CLICKHOUSE_URL=http://... (e.g. from `usage-pipeline clickhouse up`)"
            )
        return settings_url
    shutil.rmtree(home / "data", ignore_errors=True)  # a fresh store for every demo run
    server = LocalClickHouseServer(home, progress=lambda m: say(f"[demo] clickhouse: {m}"))
    cleanup.callback(_stop_server, server, say)
    say("[demo] several workers need a shared store: starting a local ClickHouse server (no Docker) ...")
    return server.up()


def _stop_server(server: Any, say: Callable[[str], None]) -> None:
    say("[demo] stopping the local ClickHouse server ...")
    server.down()


class WorkerFleet:
    """N `usage-pipeline worker` processes with the same settings (one consumer group)."""

    def __init__(self, env: Mapping[str, str], count: int, log_dir: Path) -> None:
        names = ["demo-worker.log"] if count == 1 else [f"demo-worker-{i + 1}.log" for i in range(count)]
        self.workers = [WorkerProcess(env, log_path=log_dir / name) for name in names]

    def start(self, cleanup: ExitStack, say: Callable[[str], None]) -> None:
        """Start every worker; each is stopped when `cleanup` unwinds, also on failure."""
        for i, worker in enumerate(self.workers):
            cleanup.callback(_stop_worker, worker, i, say)
            worker.start()
            say(f"[demo] worker {i + 1} ready at {worker.url} (log: {worker.log_path})")

    def stats(self) -> list[dict[str, Any]]:
        return [worker.stats() for worker in self.workers]

    def wait_for_messages(
        self, messages: int, *, partitions: int, timeout: float, progress: Callable[[list[dict[str, Any]]], None]
    ) -> dict[str, Any]:
        """Until the workers took `messages` between them, own all `partitions` and lag on none.

        Messages redelivered after a rebalance count twice in the sum, hence the lag check;
        during a rebalance nobody owns the partitions, hence the ownership check.
        """
        deadline = time.monotonic() + timeout
        stats: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            for worker in self.workers:
                worker.raise_if_exited()
            try:
                stats = self.stats()
                lag = sum(self._lag(worker) for worker in self.workers)
            except OSError:
                time.sleep(0.5)
                continue
            progress(stats)
            owned = sorted(p for s in stats for p in s.get("partitions", []))
            if merge_stats(stats)["messages"] >= messages and lag == 0 and owned == list(range(partitions)):
                return merge_stats(stats)
            time.sleep(0.5)
        taken = merge_stats(stats)["messages"] if stats else 0
        raise PipelineError(f"the workers took {taken:,} of {messages:,} messages in {timeout:.0f} s")

    def report(self, group_by: str) -> list[dict[str, Any]]:
        """Billing from the shared store (any worker answers for all of it)."""
        return self.workers[0].report(group_by)

    @staticmethod
    def _lag(worker: WorkerProcess) -> int:
        import urllib.request

        with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        return sum(
            int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines() if line.startswith("usage_consumer_lag{")
        )


def _stop_worker(worker: WorkerProcess, index: int, say: Callable[[str], None]) -> None:
    say(f"[demo] stopping worker {index + 1} ...")
    worker.stop()
