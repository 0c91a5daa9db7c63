"""What a local broker is told and what it records: server.properties and state.json.

Pure: rendering and parsing text, so every listener and security property is testable
without a JVM.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from stream_app.broker.ports import HOST

RUN_HEADER = "\n--- broker start "


@dataclass(frozen=True)
class BrokerState:
    """What `home/state.json` records about a started broker."""

    pid: int
    port: int
    controller_port: int
    started_at: str

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class BrokerStatus:
    """Whether the broker of a home is running, and where."""

    running: bool
    bootstrap: str | None
    pid: int | None
    data_dir: Path


def render_server_properties(
    port: int, controller_port: int, data_dir: Path, secure: dict[str, str] | None = None
) -> str:
    """The broker's server.properties: one KRaft node, both roles, 127.0.0.1 only.

    With `secure` (the SASL_SSL listener's properties, `stream_app.broker.tls`), clients
    get only a SASL_SSL listener named SECURE; the controller listener stays PLAINTEXT
    on loopback, inside the one JVM.
    """
    client = "SECURE" if secure is not None else "PLAINTEXT"
    protocol = "SASL_SSL" if secure is not None else "PLAINTEXT"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "listeners": f"{client}://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"{client}://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": f"{client}:{protocol},CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": client,
        "log.dirs": str(data_dir),
        "num.partitions": "4",
        # One node: every internal topic must make do with one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # Consumers of a fresh group start at once instead of after 3 s.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        **(secure or {}),
    }
    lines = ["# Written by stream_app.broker.local on every start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def parse_listener_ports(properties: str) -> tuple[int, int] | None:
    """(port, controller port) from a rendered server.properties, or None if absent."""
    match = re.search(
        r"^listeners=(?:PLAINTEXT|SECURE)://[^:]+:(\d+),CONTROLLER://[^:]+:(\d+)\s*$", properties, re.MULTILINE
    )
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def format_state(state: BrokerState) -> str:
    """The JSON text of `home/state.json`."""
    return json.dumps(
        {
            "pid": state.pid,
            "port": state.port,
            "controller_port": state.controller_port,
            "started_at": state.started_at,
        },
        indent=2,
    ) + "\n"


def parse_state(text: str) -> BrokerState | None:
    """The state recorded in `home/state.json`, or None if it is not a valid record."""
    try:
        raw = json.loads(text)
        state = BrokerState(
            pid=raw["pid"],
            port=raw["port"],
            controller_port=raw["controller_port"],
            started_at=raw["started_at"],
        )
    except (ValueError, TypeError, KeyError):
        return None
    numbers = (state.pid, state.port, state.controller_port)
    if not all(type(n) is int and n > 0 for n in numbers) or not isinstance(state.started_at, str):
        return None
    return state



def new_cluster_id() -> str:
    """A KRaft cluster id, as `kafka-storage random-uuid` makes it.

    Made here rather than by the tool because that costs a JVM start (~1 s). Kafka's
    Uuid is 16 random bytes in URL-safe base64 without padding; like Kafka's own
    generator, redraw ids starting with '-', which a command line would take for an option.
    """
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text



def last_run(log_text: str) -> str:
    """The part of broker.log written by the latest start (each start writes a header)."""
    _, marker, last = log_text.rpartition(RUN_HEADER)
    return marker + last if marker else log_text

