"""The pure parts of the local ClickHouse server: config, state, SQL, failure diagnosis.

Nothing here touches a process, a socket or a file, so all of it is unit-tested without
starting a server (tests/unit/clickhouse_server).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

# The chDB release the server entry point was verified with (INFRA.md). It is a private
# entry point of chDB (`chdb._chdb.query` running clickhouse-local with a listener), so an
# upgrade may break it silently: `up` refuses other versions unless told otherwise, and
# tests/integration/clickhouse_server checks this version end to end. pyproject.toml
# pins the same version in the `stream` extra.
VERIFIED_CHDB_CORE = "26.9.0"
ENGINE_VERSION_PREFIX = "26.9."

HOST = "127.0.0.1"
DEFAULT_PORT = 8123
DEFAULT_DATABASE = "usage"
# The macro the server answers with: readiness and status ask for it, so a port taken by
# another ClickHouse (or anything else answering /ping) never passes for ours.
TOKEN_MACRO = "usage_pipeline_server_token"
SERVE_MARKER = "usage-pipeline-serve"
RUN_HEADER = "\n--- clickhouse server start "


@dataclass(frozen=True)
class ServerState:
    """What `home/state.json` records about a started server."""

    pid: int
    port: int
    token: str
    data_dir: str
    started_at: str

    @property
    def url(self) -> str:
        return server_url(self.port)


@dataclass(frozen=True)
class ServerStatus:
    """Whether the server of a home runs, where, and on which data."""

    running: bool
    url: str | None
    pid: int | None
    data_dir: str
    version: str | None = None


def server_url(port: int, database: str = DEFAULT_DATABASE) -> str:
    """The CLICKHOUSE_URL that reaches the server (user `default`, no password, loopback)."""
    return f"http://{HOST}:{port}/{database}"


def render_config_xml(port: int, token: str) -> str:
    """The config.xml clickhouse-local reads from its working directory when it serves.

    Only the listener and the identity token: the port and host cannot be passed any
    other way (connection-string options are silently ignored, INFRA.md).
    """
    if not re.fullmatch(r"[0-9a-f]{8,64}", token):
        raise ValueError(f"token must be lowercase hex, got {token!r}")
    return (
        "<!-- Written by stream_app.clickhouse_server on every start; edits are overwritten. -->\n"
        "<clickhouse>\n"
        f"  <http_port>{port}</http_port>\n"
        f"  <listen_host>{HOST}</listen_host>\n"
        f"  <macros><{TOKEN_MACRO}>{token}</{TOKEN_MACRO}></macros>\n"
        "</clickhouse>\n"
    )


def parse_config_port(text: str) -> int | None:
    """The HTTP port of a rendered config.xml, or None."""
    match = re.search(r"<http_port>(\d+)</http_port>", text)
    return int(match.group(1)) if match else None


def serve_sql(token: str) -> str:
    """Start the HTTP listener, then keep the one-shot call alive with an idle query.

    `sleepEachRow` over `system.numbers` with one-row blocks idles at ~1% of a core; the
    call (and so the listener) lasts until that query is killed (`stop_sql`).
    """
    return (
        "SYSTEM START LISTEN HTTP; "
        f"SELECT sleepEachRow(0.5) /* {SERVE_MARKER} {token} */ FROM system.numbers "
        "SETTINGS max_block_size = 1 FORMAT Null"
    )


def stop_sql(token: str) -> str:
    """Kill the idle query of `serve_sql`, which makes clickhouse-local shut down."""
    return (
        "KILL QUERY WHERE query LIKE "
        f"'SELECT sleepEachRow(0.5) /* {SERVE_MARKER} {token} */%' SYNC FORMAT Null"
    )


def identity_sql() -> str:
    return f"SELECT getMacro('{TOKEN_MACRO}'), version()"


def parse_identity(body: str) -> tuple[str, str] | None:
    """(token, version) from the answer to `identity_sql`, or None if it is not that."""
    fields = body.strip().split("\t")
    if len(fields) != 2 or not all(fields):
        return None
    return fields[0], fields[1]


def unverified_chdb_message(installed: str | None) -> str | None:
    """Why the installed chdb-core cannot be trusted to serve, or None if it is the verified one."""
    if installed == VERIFIED_CHDB_CORE:
        return None
    found = f"chdb-core {installed} is installed" if installed else "chdb-core is not installed"
    return (
        f"{found}, but the local ClickHouse server was verified only with chdb-core "
        f"{VERIFIED_CHDB_CORE} (it runs a private chDB entry point that an upgrade may break). "
        f"Install the pinned version with `pip install 'chdb-core=={VERIFIED_CHDB_CORE}'` "
        "(or `pip install -e '.[stream]'`), or pass --allow-unverified-chdb to try anyway"
    )


def diagnose_start_failure(log_text: str, port: int, data_dir: str) -> str | None:
    """A message a person can act on, from what clickhouse-local printed, or None."""
    if "Address already in use" in log_text:
        return (
            f"port {HOST}:{port} is taken by another process; choose another with "
            "`usage-pipeline clickhouse up --port N`, or omit --port to take a free one"
        )
    if "Cannot lock file" in log_text or "Another server instance in same directory" in log_text:
        return store_locked_message(data_dir, None)
    return None


def store_locked_message(data_dir: str, holder: str | None) -> str:
    who = f" ({holder})" if holder else ""
    return (
        f"the ClickHouse store {data_dir} is open in another process{who}: an embedded store "
        f"(CLICKHOUSE_URL=chdb://{data_dir}) can be opened by one process at a time. Stop that "
        "process (a worker, `usage-pipeline report`, ...), start the server, and point every "
        "process at the URL `usage-pipeline clickhouse up` prints"
    )


def parse_status_file_pid(text: str) -> int | None:
    """The PID line of a ClickHouse store's `status` file (written by whoever holds the store)."""
    match = re.search(r"^PID:\s*(\d+)\s*$", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def format_state(state: ServerState) -> str:
    """The JSON text of `home/state.json`."""
    return json.dumps(state.__dict__, indent=2) + "\n"


def parse_state(text: str) -> ServerState | None:
    """The state recorded in `home/state.json`, or None if it is not a valid record."""
    try:
        raw = json.loads(text)
        state = ServerState(
            pid=raw["pid"], port=raw["port"], token=raw["token"], data_dir=raw["data_dir"], started_at=raw["started_at"]
        )
    except (ValueError, TypeError, KeyError):
        return None
    if not all(type(n) is int and n > 0 for n in (state.pid, state.port)):
        return None
    if not all(isinstance(s, str) and s for s in (state.token, state.data_dir, state.started_at)):
        return None
    return state


def choose_port(
    requested: int | None, previous: int | None, is_free: Callable[[int], bool], free_port: Callable[[], int]
) -> int:
    """The port for a start: as requested; else the last start's if free (URLs people
    exported keep working); else 8123 if free; else any free port."""
    if requested is not None:
        return requested
    if previous is not None and is_free(previous):
        return previous
    if is_free(DEFAULT_PORT):
        return DEFAULT_PORT
    return free_port()


def last_run(log_text: str) -> str:
    """The part of server.log written by the latest start (each start writes a header)."""
    _, marker, last = log_text.rpartition(RUN_HEADER)
    return marker + last if marker else log_text
