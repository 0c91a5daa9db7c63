"""The local ClickHouse server's pure parts: config, state, SQL, diagnosis, version pin."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from stream_app.clickhouse_server.config import (
    DEFAULT_PORT,
    TOKEN_MACRO,
    VERIFIED_CHDB_CORE,
    ServerState,
    choose_port,
    diagnose_start_failure,
    format_state,
    last_run,
    parse_config_port,
    parse_identity,
    parse_state,
    parse_status_file_pid,
    render_config_xml,
    serve_sql,
    server_url,
    stop_sql,
    unverified_chdb_message,
)

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "0123456789abcdef0123456789abcdef"


def test_config_listens_on_loopback_only_with_the_token_as_a_macro() -> None:
    text = render_config_xml(18123, TOKEN)
    assert "<http_port>18123</http_port>" in text
    assert re.findall(r"<listen_host>([^<]*)</listen_host>", text) == ["127.0.0.1"]
    assert f"<{TOKEN_MACRO}>{TOKEN}</{TOKEN_MACRO}>" in text
    assert parse_config_port(text) == 18123


def test_config_refuses_a_token_that_could_break_the_xml() -> None:
    with pytest.raises(ValueError):
        render_config_xml(18123, "<evil>")


def test_stop_sql_kills_exactly_the_idle_query_of_serve_sql() -> None:
    idle = serve_sql(TOKEN).split("; ", 1)[1]
    pattern = re.search(r"LIKE '([^']*)'", stop_sql(TOKEN)).group(1)
    regex = "^" + re.escape(pattern).replace("%", ".*") + "$"
    assert re.match(regex, idle)
    assert not re.match(regex, stop_sql(TOKEN))  # the KILL itself is not its own target
    assert not re.match(regex, serve_sql("f" * 32).split("; ", 1)[1])  # nor another server's


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f"{TOKEN}\t26.9.2.1\n", (TOKEN, "26.9.2.1")),
        ("Ok.\n", None),
        ("", None),
        ("<html>nginx</html>", None),
    ],
)
def test_parse_identity(body: str, expected: tuple[str, str] | None) -> None:
    assert parse_identity(body) == expected


def test_state_round_trips_and_rejects_garbage() -> None:
    state = ServerState(pid=42, port=18123, token=TOKEN, data_dir="/d", started_at="2026-01-01T00:00:00+00:00")
    assert parse_state(format_state(state)) == state
    assert state.url == "http://127.0.0.1:18123/usage"
    assert parse_state("{") is None
    assert parse_state('{"pid": -1, "port": 1, "token": "t", "data_dir": "/d", "started_at": "x"}') is None
    assert parse_state('{"pid": 1, "port": 1, "token": "", "data_dir": "/d", "started_at": "x"}') is None


def test_choose_port_prefers_request_then_previous_then_default_then_any() -> None:
    free = {DEFAULT_PORT, 18000}
    is_free = free.__contains__
    assert choose_port(9999, 18000, is_free, lambda: 1) == 9999
    assert choose_port(None, 18000, is_free, lambda: 1) == 18000
    assert choose_port(None, 17000, is_free, lambda: 1) == DEFAULT_PORT
    assert choose_port(None, None, lambda port: False, lambda: 31337) == 31337


def test_start_failures_are_named() -> None:
    taken = "Code: 210. DB::Exception: Listen [127.0.0.1]:18123 failed: ... Address already in use: 127.0.0.1:18123"
    assert "port 127.0.0.1:18123 is taken" in diagnose_start_failure(taken, 18123, "/d")
    locked = "Code: 76. DB::Exception: Cannot lock file /d/status. Another server instance in same directory is already running."
    message = diagnose_start_failure(locked, 1, "/d")
    assert "chdb:///d" in message and "one process at a time" in message
    assert diagnose_start_failure("something else", 1, "/d") is None


def test_status_file_pid() -> None:
    assert parse_status_file_pid("PID: 6082\nStarted at: 2026-12-02 05:32:26\nRevision: 54515\n") == 6082
    assert parse_status_file_pid("") is None


def test_last_run_keeps_only_the_latest_start() -> None:
    text = "\n--- clickhouse server start A\nold error\n--- clickhouse server start B\nnew"
    assert "old error" not in last_run(text) and "new" in last_run(text)


def test_unverified_chdb_is_explained_with_the_fix() -> None:
    assert unverified_chdb_message(VERIFIED_CHDB_CORE) is None
    message = unverified_chdb_message("27.1.0")
    assert "27.1.0" in message and f"chdb-core=={VERIFIED_CHDB_CORE}" in message and "--allow-unverified-chdb" in message
    assert "not installed" in unverified_chdb_message(None)


def test_the_pin_in_pyproject_is_the_verified_version_and_is_installed() -> None:
    """Fails loudly on a chDB upgrade: re-run tests/integration/clickhouse_server, then move the pin."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["stream"]
    assert f"chdb-core=={VERIFIED_CHDB_CORE}" in extras
    assert metadata.version("chdb-core") == VERIFIED_CHDB_CORE


def test_server_url_names_the_database() -> None:
    assert server_url(8123, "test_abc") == "http://127.0.0.1:8123/test_abc"
