"""A worker in its own process: how the demo, the tests and the benchmark run one.

A real `usage-pipeline worker` process, talked to over its HTTP endpoint; always stopped
by whoever started it, even when they fail (use it as a context manager).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stream_app.broker.local import find_free_port
from stream_app.errors import PipelineError


class WorkerProcess:
    """`python -m stream_app worker` with the given settings in its environment."""

    def __init__(self, env: Mapping[str, str], *, log_path: Path, web_port: int | None = None) -> None:
        self.web_port = web_port or find_free_port()
        self.env = {**os.environ, **env, "USAGE_WORKER_WEB_PORT": str(self.web_port)}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise PipelineError("worker not started")
        return self.process.pid

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        """Spawn the worker and wait until its HTTP endpoint answers."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stream_app", "worker"],
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PipelineError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.get("/health", timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise PipelineError(f"worker did not become healthy within {timeout:.0f} s:\n{self.log_tail()}")

    @property
    def admin_headers(self) -> dict[str, str]:
        """The `Authorization` header for the worker's pages, when its environment sets USAGE_ADMIN_TOKEN."""
        token = self.env.get("USAGE_ADMIN_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, *, timeout: float = 30.0, **params: str) -> Any:
        """GET a JSON page of the worker (with the admin token, if it has one)."""
        return json.loads(self.fetch(path, timeout=timeout, **params))

    def fetch(self, path: str, *, timeout: float = 30.0, **params: str) -> bytes:
        """GET a page of the worker and return its body as received (with the admin token, if it has one)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(f"{self.url}{path}{query}", headers=self.admin_headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def stats(self) -> dict[str, Any]:
        return self.get("/stats")

    def partitions(self) -> list[int]:
        """The events-topic partitions assigned to this worker now ([] while it rebalances)."""
        return list(self.stats()["partitions"])

    def report(self, group_by: str = "project", **filters: str) -> list[dict[str, Any]]:
        return self.get("/report", group_by=group_by, **filters)

    def wait_for_messages(
        self,
        messages: int,
        *,
        timeout: float = 120.0,
        progress: Callable[[dict[str, Any]], None] | None = None,
        interval: float = 0.5,
    ) -> dict[str, Any]:
        """Block until the worker has processed at least `messages` Kafka messages."""
        deadline = time.monotonic() + timeout
        stats: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.raise_if_exited()
            try:
                stats = self.stats()
            except OSError:
                time.sleep(interval)
                continue
            if progress:
                progress(stats)
            if stats["messages"] >= messages:
                return stats
            time.sleep(interval)
        raise PipelineError(
            f"worker processed {stats.get('messages', 0)} of {messages} messages in {timeout:.0f} s:\n{self.log_tail()}"
        )

    def raise_if_exited(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise PipelineError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the worker finishes its chunk and commits), then SIGKILL after `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL the worker's whole process group: nothing is committed past what was written."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
