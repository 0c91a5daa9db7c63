"""Start, find, check and stop the local ClickHouse server process (`clickhouse up|down|status`).

Layout of a server home (default `<USAGE_PIPELINE_HOME>/clickhouse-server`):

    home/config.xml    listener and identity token, rendered on every start
    home/data/         the store (unless --data-dir names another one)
    home/server.log    the process's stdout and stderr, one header per start
    home/state.json    pid, port, token and data directory of the running server
    home/.lock         serialises up/down across processes

Modelled on stream_app.broker.local.LocalKafkaBroker: `up` works across processes and is
idempotent, the state file is recorded before waiting (so `down` finds an interrupted
start), and readiness means *this* server answered with its token.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import secrets
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from stream_app.broker.local import find_free_port, port_is_free
from stream_app.broker.processes import file_lock as _file_lock
from stream_app.broker.processes import runs_with_args, terminate
from stream_app.broker.processes import write_atomically as _write_atomically
from stream_app.clickhouse_server.config import (
    HOST,
    RUN_HEADER,
    ServerState,
    ServerStatus,
    choose_port,
    diagnose_start_failure,
    format_state,
    identity_sql,
    last_run,
    parse_config_port,
    parse_identity,
    parse_state,
    parse_status_file_pid,
    render_config_xml,
    store_locked_message,
    unverified_chdb_message,
)
from stream_app.clickhouse_server.serve import installed_chdb_core
from stream_app.errors import ClickHouseServerError

STARTUP_TIMEOUT_SECONDS = 60.0
# Past this the server is killed: by then it has stopped taking queries and only waits
# (a hard-coded ~5 s) for clients that keep idle connections open; every write of the
# pipeline is idempotent and a ClickHouse part is either whole on disk or absent.
STOP_GRACE_SECONDS = 2.0
PROGRESS_EVERY_SECONDS = 5.0
LOG_TAIL_LINES = 20


def _print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class LocalClickHouseServer:
    """One ClickHouse server (the chDB engine serving HTTP on 127.0.0.1) living in `home`.

    The blocking methods must not be called from inside a running event loop.
    """

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        allow_unverified_chdb: bool = False,
        progress: Callable[[str], None] = _print_progress,
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.port = port
        self._data_dir = Path(data_dir).expanduser().resolve() if data_dir else None
        self.allow_unverified_chdb = allow_unverified_chdb
        self.progress = progress
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self._data_dir or self.home / "data"

    @property
    def config_file(self) -> Path:
        return self.home / "config.xml"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def state_file(self) -> Path:
        return self.home / "state.json"

    # -- lifecycle ----------------------------------------------------------------------

    def up(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> str:
        """Start the server unless it already runs; return its CLICKHOUSE_URL."""
        self.home.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.home / ".lock"):
            state = self._read_state()
            if state is None or not self._is_our_process(state.pid):
                return self._start(timeout)
            identity = identify(state.port)
            if identity is None or identity[0] != state.token:
                raise ClickHouseServerError(
                    f"the ClickHouse server of {self.home} (pid {state.pid}) runs but does not answer "
                    f"at {state.url}; see {self.log_file}, or stop it with `usage-pipeline clickhouse down`"
                )
            if self.port is not None and self.port != state.port:
                self.progress(
                    f"a server already runs at {state.url}; --port {self.port} is ignored "
                    "(stop it first with `usage-pipeline clickhouse down`)"
                )
            if self._data_dir is not None and str(self._data_dir) != state.data_dir:
                self.progress(f"a server already runs on {state.data_dir}; --data-dir is ignored")
            return state.url

    def down(self, grace: float = STOP_GRACE_SECONDS) -> bool:
        """Stop the server: SIGTERM (a clean engine shutdown), SIGKILL after `grace` seconds.

        True if one was running. The data is kept.
        """
        if not self.home.is_dir():
            return False
        with _file_lock(self.home / ".lock"):
            state = self._read_state()
            stopped = False
            if state is not None and self._is_our_process(state.pid):
                self.progress(f"stopping the ClickHouse server at {state.url} (pid {state.pid}) ...")
                self._stop_pid(state.pid, grace)
                stopped = True
            self.state_file.unlink(missing_ok=True)
            return stopped

    def status(self) -> ServerStatus:
        """Whether the recorded server is alive and answers with its own token."""
        state = self._read_state()
        if state is not None and self._is_our_process(state.pid):
            identity = identify(state.port)
            if identity is not None and identity[0] == state.token:
                return ServerStatus(True, state.url, state.pid, state.data_dir, identity[1])
        return ServerStatus(False, None, None, str(state.data_dir if state else self.data_dir))

    def _start(self, timeout: float) -> str:
        problem = unverified_chdb_message(installed_chdb_core())
        if problem:
            if not self.allow_unverified_chdb:
                raise ClickHouseServerError(problem)
            self.progress(f"warning: {problem}")
        port = choose_port(self.port, self._previous_port(), port_is_free, find_free_port)
        if not port_is_free(port):
            raise ClickHouseServerError(diagnose_start_failure("Address already in use", port, str(self.data_dir)))
        self._refuse_locked_store()
        token = secrets.token_hex(16)
        _write_atomically(self.config_file, render_config_xml(port, token))
        self.progress(f"starting the ClickHouse server on {HOST}:{port}, data {self.data_dir} (log: {self.log_file}) ...")
        started = time.monotonic()
        process = self._spawn(port, token)
        state = ServerState(
            pid=process.pid,
            port=port,
            token=token,
            data_dir=str(self.data_dir),
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        _write_atomically(self.state_file, format_state(state))
        try:
            version = self._wait_until_ready(process, state, started + timeout)
        except BaseException:
            self._stop_pid(process.pid, grace=1.0)
            self.state_file.unlink(missing_ok=True)
            raise
        elapsed = time.monotonic() - started
        self.progress(f"ClickHouse {version} is ready at {state.url} (pid {process.pid}, {elapsed:.1f} s)")
        return state.url

    def _previous_port(self) -> int | None:
        try:
            return parse_config_port(self.config_file.read_text())
        except OSError:
            return None

    def _refuse_locked_store(self) -> None:
        """Fail before spawning when another process holds the store (an embedded user)."""
        status_file = self.data_dir / "status"
        if not status_file.is_file():
            return
        with status_file.open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = parse_status_file_pid(status_file.read_text(errors="replace"))
                raise ClickHouseServerError(store_locked_message(str(self.data_dir), _describe_pid(pid))) from None
            fcntl.flock(handle, fcntl.LOCK_UN)

    def _spawn(self, port: int, token: str) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "stream_app.clickhouse_server",
            "--home", str(self.home), "--data-dir", str(self.data_dir), "--port", str(port), "--token", token,
        ]
        if self.allow_unverified_chdb:
            command.append("--allow-unverified-chdb")
        with self.log_file.open("ab") as log:
            log.write(f"{RUN_HEADER}{dt.datetime.now(dt.UTC).isoformat()} port {port}\n".encode())
            log.flush()
            # A session of its own: Ctrl-C in the terminal that ran `clickhouse up` must not
            # reach the server, which outlives that command.
            self._process = subprocess.Popen(
                command, cwd=self.home, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        return self._process

    def _wait_until_ready(self, process: subprocess.Popen[bytes], state: ServerState, deadline: float) -> str:
        started = time.monotonic()
        next_note = started + PROGRESS_EVERY_SECONDS
        while True:
            exit_code = process.poll()
            if exit_code is not None:
                tail = self._log_tail()
                reason = diagnose_start_failure(tail, state.port, state.data_dir)
                raise ClickHouseServerError(
                    (reason + "\n" if reason else "")
                    + f"the ClickHouse server exited with code {exit_code} while starting; "
                    f"last lines of {self.log_file}:\n{tail}"
                )
            identity = identify(state.port)
            if identity is not None and identity[0] == state.token:
                return identity[1]
            now = time.monotonic()
            if now >= deadline:
                raise ClickHouseServerError(
                    f"the ClickHouse server did not answer at {state.url} within {deadline - started:.0f} s; "
                    f"last lines of {self.log_file}:\n{self._log_tail()}"
                )
            if now >= next_note:
                self.progress(f"waiting for the ClickHouse server at {state.url} ({now - started:.0f} s) ...")
                next_note = now + PROGRESS_EVERY_SECONDS
            time.sleep(0.1)

    def _stop_pid(self, pid: int, grace: float) -> None:
        def note() -> None:
            self.progress(f"the ClickHouse server (pid {pid}) still waits for idle clients after {grace:.0f} s; killing it")

        if not terminate(pid, grace, note):
            raise ClickHouseServerError(f"the ClickHouse server (pid {pid}) survived SIGKILL")

    # -- state --------------------------------------------------------------------------

    def _read_state(self) -> ServerState | None:
        try:
            return parse_state(self.state_file.read_text())
        except OSError:
            return None

    def _is_our_process(self, pid: int) -> bool:
        """Whether `pid` is alive and is this home's server (pids get reused)."""
        return runs_with_args(pid, b"stream_app.clickhouse_server", str(self.home).encode())

    def _log_tail(self) -> str:
        try:
            text = last_run(self.log_file.read_text(errors="replace"))
        except OSError:
            return "(no log)"
        return "\n".join(text.rstrip().splitlines()[-LOG_TAIL_LINES:])


def identify(port: int, timeout: float = 1.0) -> tuple[str, str] | None:
    """(token, version) of the ClickHouse server answering on 127.0.0.1:`port`, or None."""
    query = urllib.parse.urlencode({"query": identity_sql()})
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/?{query}", timeout=timeout) as response:
            return parse_identity(response.read().decode(errors="replace"))
    except (OSError, ValueError):
        return None


def _describe_pid(pid: int | None) -> str | None:
    if pid is None:
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    command = " ".join(a.decode(errors="replace") for a in args if a)[:160]
    return f"pid {pid}: {command}" if command else f"pid {pid}"
