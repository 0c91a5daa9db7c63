"""The environment variables of usage tracking, read in one place, when tracking is configured.

Arguments to `configure_usage_tracking` override them. Nothing is read at import time.

| variable | default | meaning |
|---|---|---|
| `USAGE_TRACKING_DISABLED` | unset | `1`/`true`/`yes`: the kill switch, publish nothing (handlers still run) |
| `KAFKA_BOOTSTRAP_SERVERS` | — | where events go, `host:port[,host:port]` |
| `USAGE_EVENTS_TOPIC` | `llm.usage.events` | the topic |
| `USAGE_TRACKING_SOURCE` | the program's name | the events' `source` |
| `USAGE_TRACKING_PROJECT_ID` | — | default `project_id` outside any `usage_context` |
| `USAGE_TRACKING_SPOOL_DIR` | `~/.cache/usage-pipeline/spool/<topic>-<hash>` | spool for outages |
| `USAGE_TRACKING_SPOOL_MAX_BYTES` | 268435456 (256 MiB) | the spool's bound |
| `USAGE_TRACKING_QUEUE_MAX_EVENTS` | 50000 | in-memory queue bound before spilling to the spool |
| `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_*` | PLAINTEXT | TLS and SASL (producers/kafka_security.py) |
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from producers.errors import TrackingConfigError
from producers.kafka_security import KafkaSecurity, KafkaSecurityError, read_kafka_security
from producers.spool import DEFAULT_MAX_BYTES
from producers.transport import DEFAULT_QUEUE_MAX_EVENTS

DEFAULT_TOPIC = "llm.usage.events"
KILL_SWITCH = "USAGE_TRACKING_DISABLED"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class TrackingSettings:
    """Usage tracking settings from the environment."""

    disabled: bool = False
    bootstrap_servers: str | None = None
    topic: str = DEFAULT_TOPIC
    source: str | None = None
    project_id: str | None = None
    spool_dir: Path | None = None
    spool_max_bytes: int = DEFAULT_MAX_BYTES
    queue_max_events: int = DEFAULT_QUEUE_MAX_EVENTS
    kafka_security: KafkaSecurity | None = None


def read_tracking_settings(environ: Mapping[str, str] | None = None) -> TrackingSettings:
    """The settings in `environ` (default: the process environment).

    Raises `TrackingConfigError` naming the variable when a value cannot be used.
    """
    env = os.environ if environ is None else environ
    try:
        security = read_kafka_security(env)
    except KafkaSecurityError as exc:
        raise TrackingConfigError(str(exc)) from None
    return TrackingSettings(
        disabled=_flag(env, KILL_SWITCH),
        bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        topic=env.get("USAGE_EVENTS_TOPIC") or DEFAULT_TOPIC,
        source=env.get("USAGE_TRACKING_SOURCE") or None,
        project_id=env.get("USAGE_TRACKING_PROJECT_ID") or None,
        spool_dir=Path(env["USAGE_TRACKING_SPOOL_DIR"]) if env.get("USAGE_TRACKING_SPOOL_DIR") else None,
        spool_max_bytes=_positive_int(env, "USAGE_TRACKING_SPOOL_MAX_BYTES", DEFAULT_MAX_BYTES),
        queue_max_events=_positive_int(env, "USAGE_TRACKING_QUEUE_MAX_EVENTS", DEFAULT_QUEUE_MAX_EVENTS),
        kafka_security=security,
    )


def default_spool_dir(bootstrap_servers: str, topic: str) -> Path:
    """Where events wait during an outage, one directory per (cluster, topic).

    Keyed by both, so a spool is only ever replayed to the cluster and topic its
    events were meant for, even when several services share a machine.
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    digest = hashlib.sha256(f"{bootstrap_servers}|{topic}".encode()).hexdigest()[:12]
    safe_topic = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in topic)
    return Path(base) / "usage-pipeline" / "spool" / f"{safe_topic}-{digest}"


def default_source() -> str:
    """The program's name, as the events' `source` when none is configured."""
    name = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return name if name and name not in {"-c", "-m", "__main__"} else "python-service"


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise TrackingConfigError(f"{name}={value!r}: use 1/true/yes to disable publishing, 0/false/no or unset otherwise")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise TrackingConfigError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise TrackingConfigError(f"{name}={raw!r} must be positive")
    return value
