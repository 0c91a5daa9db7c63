"""Where ClickHouse is (`CLICKHOUSE_URL`) and how to connect to it, embedded or over HTTP(S).

Passwords stay `SecretStr` from parsing to the client call: they appear in no message,
repr or log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

from stream_app.errors import ConfigurationError, SinkError

DEFAULT_DATABASE = "usage"


@dataclass(frozen=True)
class ClickHouseLocation:
    """Where ClickHouse is, parsed from `CLICKHOUSE_URL`."""

    kind: str  # "chdb" or "http"
    database: str
    path: Path | None = None
    host: str = ""
    port: int = 8123
    username: str = "default"
    password: SecretStr = SecretStr("")  # never in a repr, a log or an error
    secure: bool = False
    ca_file: Path | None = None  # CLICKHOUSE_CA_FILE: the private CA of an https:// server

    @property
    def display(self) -> str:
        if self.kind == "chdb":
            return f"chdb://{self.path} (database {self.database})"
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{self.database}"


def parse_clickhouse_url(url: str, ca_file: Path | None = None) -> ClickHouseLocation:
    """`chdb:///abs/dir[?database=db]` or `http(s)://user:pass@host:port/db`."""
    parts = urlsplit(url)
    url = redact_url_password(url)  # from here on, only for messages
    if parts.scheme == "chdb":
        raw_path = unquote(parts.netloc + parts.path)
        if not raw_path.startswith("/"):
            raise ConfigurationError(
                f"CLICKHOUSE_URL={url!r}: the embedded store needs an absolute directory, "
                "e.g. chdb:///var/lib/usage-pipeline/clickhouse"
            )
        database = parse_qs(parts.query).get("database", [DEFAULT_DATABASE])[0]
        return ClickHouseLocation("chdb", database, path=Path(raw_path))
    if parts.scheme in {"http", "https"}:
        if not parts.hostname:
            raise ConfigurationError(f"CLICKHOUSE_URL={url!r} has no host; use http://user:pass@host:8123/db")
        database = parts.path.strip("/") or DEFAULT_DATABASE
        return ClickHouseLocation(
            "http",
            database,
            host=parts.hostname,
            port=parts.port or (8443 if parts.scheme == "https" else 8123),
            username=unquote(parts.username or "default"),
            password=SecretStr(unquote(parts.password or "")),
            secure=parts.scheme == "https",
            ca_file=ca_file,
        )
    raise ConfigurationError(
        f"CLICKHOUSE_URL={url!r}: use chdb:///absolute/dir or http(s)://user:pass@host:8123/db"
    )


def redact_url_password(url: str) -> str:
    """`url` with the password of its user part replaced by `***`, for messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or ":" not in userinfo or "/" in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


class ClickHouseClient(Protocol):
    def command(self, cmd: str, *args: Any, **kwargs: Any) -> Any: ...
    def query(self, query: str, *args: Any, **kwargs: Any) -> Any: ...
    def insert(self, table: str, data: Any, *args: Any, **kwargs: Any) -> Any: ...
    def close(self) -> None: ...


def connect(location: ClickHouseLocation) -> ClickHouseClient:
    """A clickhouse-connect client for the location (opens the embedded store)."""
    import clickhouse_connect

    try:
        if location.kind == "chdb":
            assert location.path is not None
            location.path.mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(dsn=f"chdb://{location.path}")
        return clickhouse_connect.get_client(
            host=location.host,
            port=location.port,
            username=location.username,
            password=location.password.get_secret_value(),
            secure=location.secure,
            # https verifies the server's certificate (clickhouse-connect's default, kept explicit).
            verify=True,
            ca_cert=str(location.ca_file) if location.ca_file else None,
        )
    except Exception as exc:
        hint = (
            " (the embedded store can be opened by one process at a time: is a worker running? "
            "`usage-pipeline report` asks a running worker instead)"
            if location.kind == "chdb"
            else ""
        )
        raise SinkError(f"cannot open ClickHouse at {location.display}: {exc}{hint}") from exc
