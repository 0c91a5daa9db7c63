"""How `report` finds the worker that holds an embedded store: a small file beside it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

ENDPOINT_FILE = "worker-endpoint.json"


@dataclass(frozen=True)
class WorkerEndpoint:
    pid: int
    url: str


def endpoint_path(store_dir: Path) -> Path:
    return store_dir.parent / f"{store_dir.name}.{ENDPOINT_FILE}"


def publish_endpoint(store_dir: Path, url: str) -> Path:
    """Record this process as the store's worker and where its HTTP endpoint is."""
    path = endpoint_path(store_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "url": url}))
    tmp.replace(path)
    return path


def withdraw_endpoint(store_dir: Path) -> None:
    path = endpoint_path(store_dir)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def find_live_endpoint(store_dir: Path) -> WorkerEndpoint | None:
    """The running worker holding the store, if any (a stale file of a dead pid is ignored)."""
    try:
        data = json.loads(endpoint_path(store_dir).read_text())
        endpoint = WorkerEndpoint(int(data["pid"]), str(data["url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(endpoint.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return endpoint
