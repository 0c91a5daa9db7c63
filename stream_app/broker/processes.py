"""Processes and files of the local services (the Kafka broker, the ClickHouse server).

Each outlives the command that started it, so it is found again by pid and
cross-checked through /proc; state files are replaced atomically under a file lock;
stopping is SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether `pid` runs; reaps it if it is an exited child of this process."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # Not our child (started by an earlier `kafka up`): ask the kernel instead.
    else:
        return reaped == 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Whether `pid` is gone within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def terminate(pid: int, grace: float, before_kill: Callable[[], None]) -> bool:
    """SIGTERM, `grace` seconds, then (after `before_kill`) SIGKILL; whether the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_for_exit(pid, grace):
        return True
    before_kill()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return wait_for_exit(pid, 10.0)


def runs_with_args(pid: int, *markers: bytes) -> bool:
    """Whether `pid` is alive and its command line holds every marker (pids get reused)."""
    if not process_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.is_dir():
        return True  # No /proc (macOS): the pid is all there is to go on.
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return all(marker in args for marker in markers)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself contain spaces.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
