"""A local ClickHouse server without Docker: the chDB engine serving the HTTP interface.

Several workers cannot share an embedded `chdb://` store (one process at a time), so
`usage-pipeline clickhouse up` runs the same engine as a separate process that serves
ClickHouse's HTTP interface on 127.0.0.1, and prints the `CLICKHOUSE_URL` to give every
worker. Pure parts (config, state, SQL, diagnosis) are in `config`, the server process
in `serve`, process control in `control`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stream_app.clickhouse_server.config import VERIFIED_CHDB_CORE, ServerStatus
from stream_app.clickhouse_server.control import LocalClickHouseServer

if TYPE_CHECKING:
    from stream_app.settings import PipelineSettings


def server_home(settings: PipelineSettings) -> Path:
    """Where the local server of this USAGE_PIPELINE_HOME keeps its config, data and log."""
    return settings.home / "clickhouse-server"


__all__ = ["LocalClickHouseServer", "ServerStatus", "VERIFIED_CHDB_CORE", "server_home"]
