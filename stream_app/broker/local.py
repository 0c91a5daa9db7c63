"""A real Apache Kafka broker run as a local JVM process: no Docker, no ZooKeeper.

`usage-pipeline kafka up` and the integration tests use it when no
`KAFKA_BOOTSTRAP_SERVERS` is configured. It runs in KRaft mode as a single combined
broker+controller listening on 127.0.0.1 only; `secure=True` (`kafka up --secure`) gives
clients a SASL_SSL listener only (SCRAM-SHA-512, a CA made for it).

Layout of a broker home:

    home/server.properties   rendered on every start (ports may change)
    home/data/               the log dirs, formatted once (data/meta.properties)
    home/broker.log          the JVM's stdout and stderr
    home/state.json          pid, ports and start time of the running broker
    home/tls/                (secure) CA, broker certificate, SCRAM passwords; mode 0700

This module is the lifecycle; the pure parts live beside it: `server_config` (properties
and state files), `ports`, `jars` (Java and the jars from Maven Central), `processes`,
and `tls` (certificates and SCRAM users).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stream_app.broker.jars import (  # noqa: F401 - re-exported: the broker's public names
    INSTALL_HINT,
    KAFKA_VERSION,
    LOG_TAIL_LINES,
    MIN_JAVA_MAJOR,
    POM_RESOURCE,
    KafkaRuntime,
    default_jar_cache,
    parse_java_major,
)
from stream_app.broker.ports import (  # noqa: F401
    DEFAULT_PORT,
    HOST,
    accepts_connections,
    choose_ports,
    find_free_port,
    port_is_free,
)
from stream_app.broker.processes import file_lock as _file_lock  # noqa: F401 - tests use these names
from stream_app.broker.processes import runs_with_args, terminate
from stream_app.broker.processes import tail as _tail
from stream_app.broker.processes import write_atomically as _write_atomically
from stream_app.broker.server_config import (  # noqa: F401
    RUN_HEADER,
    BrokerState,
    BrokerStatus,
    format_state,
    last_run,
    new_cluster_id,
    parse_listener_ports,
    parse_state,
    render_server_properties,
)
from stream_app.errors import BrokerError, ConfigurationError

if TYPE_CHECKING:
    from producers.kafka_security import KafkaSecurity
    from stream_app.broker.tls import SecureMaterial
    from stream_app.settings import PipelineSettings

# A small heap and the serial collector: a test/dev broker handles little data, and
# this keeps it at a few hundred MB next to the worker and the embedded ClickHouse.
JVM_OPTIONS = (
    "-Xmx512m",
    "-Xms256m",
    "-XX:+UseSerialGC",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
)
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
PROGRESS_EVERY_SECONDS = 5.0


def _print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class LocalKafkaBroker:
    """One Kafka broker (KRaft, broker+controller) living in `home`, run as a JVM process.

    `up()` and `down()` work across processes: the running broker is found again through
    `home/state.json`, so `usage-pipeline kafka up` can return while the broker runs on.
    The blocking methods must not be called from inside a running event loop (use
    `asyncio.to_thread`). A home is plaintext or secure for life: SCRAM users are created
    when its storage is formatted.
    """

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        jar_cache: Path | None = None,
        progress: Callable[[str], None] = _print_progress,
        secure: bool = False,
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.port = port
        self.jar_cache = (jar_cache or default_jar_cache()).expanduser().resolve()
        self.progress = progress
        self.secure = secure
        self.runtime = KafkaRuntime(self.jar_cache, progress)
        # Kept only to reap the JVM if this process started it and it exits.
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def state_file(self) -> Path:
        return self.home / "state.json"


    @property
    def libs_dir(self) -> Path:
        return self.runtime.libs_dir

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    def ensure_jars(self) -> Path:
        """Make sure Java 17+ is there and the broker's jars are cached; return their dir."""
        return self.runtime.ensure_jars()

    def secure_material(self) -> SecureMaterial:
        """The CA, certificate and SCRAM passwords of this (secure) home, made the first time."""
        from stream_app.broker.tls import ensure_secure_material

        return ensure_secure_material(self.tls_dir)

    def client_security(self) -> KafkaSecurity | None:
        """How a client reaches this broker: None (PLAINTEXT), or its SASL_SSL settings."""
        if not self.secure:
            return None
        from producers.kafka_security import KafkaSecurity
        from pydantic import SecretStr

        from stream_app.broker.tls import CLIENT_USER, SCRAM_MECHANISM

        material = self.secure_material()
        return KafkaSecurity(
            "SASL_SSL", SCRAM_MECHANISM, CLIENT_USER, SecretStr(material.client_password), material.ca_file
        )

    # -- lifecycle ----------------------------------------------------------------------

    def up(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> str:
        """Start the broker unless it already runs; return its bootstrap address.

        Waits until the broker answers a Kafka metadata request. On failure the half
        started JVM is killed and BrokerError carries the tail of its log.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.home / ".lock"):
            state = self._read_state()
            if state is None or not self._is_our_broker(state.pid):
                return self._start(timeout)
            if not accepts_connections(state.port):
                # Starting a second JVM on the same data would only fail on its lock.
                raise BrokerError(
                    f"the Kafka broker of {self.home} (pid {state.pid}) runs but does not accept "
                    f"connections at {state.bootstrap}; see {self.log_file}, or stop it with "
                    "`usage-pipeline kafka down`"
                )
            if self.port is not None and self.port != state.port:
                self.progress(
                    f"a broker already runs at {state.bootstrap}; --port {self.port} is ignored "
                    "(stop it first with `usage-pipeline kafka down`)"
                )
            return state.bootstrap

    def down(self, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after `timeout`); True if one was running."""
        if not self.home.is_dir():
            return False
        with _file_lock(self.home / ".lock"):
            state = self._read_state()
            stopped = False
            if state is not None and self._is_our_broker(state.pid):
                self.progress(f"stopping the Kafka broker at {state.bootstrap} (pid {state.pid}) ...")
                self._stop_pid(state.pid, timeout)
                stopped = True
            self.state_file.unlink(missing_ok=True)
            return stopped

    def status(self) -> BrokerStatus:
        """Whether the broker recorded in this home is alive and accepting connections."""
        state = self._running_state()
        if state is None:
            return BrokerStatus(running=False, bootstrap=None, pid=None, data_dir=self.data_dir)
        return BrokerStatus(running=True, bootstrap=state.bootstrap, pid=state.pid, data_dir=self.data_dir)

    def _start(self, timeout: float) -> str:
        java = self.runtime.java()
        libs = self.runtime.ensure_jars()
        previous = self._previous_ports()
        port, controller_port = choose_ports(self.port, previous, port_is_free)
        if not port_is_free(port):
            raise BrokerError(f"port {HOST}:{port} is taken; choose another with --port")
        secure_properties = None
        if self.secure:
            from stream_app.broker.tls import secure_listener_properties

            secure_properties = secure_listener_properties(self.secure_material())
        _write_private(
            self.properties_file, render_server_properties(port, controller_port, self.data_dir, secure_properties)
        )
        self._format_storage_once(java, libs)

        self.progress(f"starting the Kafka broker on {HOST}:{port} (log: {self.log_file}) ...")
        started = time.monotonic()
        process = self._spawn(java, libs)
        state = BrokerState(
            pid=process.pid,
            port=port,
            controller_port=controller_port,
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        # Recorded before waiting, so that `kafka down` finds a broker whose start was interrupted.
        _write_atomically(self.state_file, format_state(state))
        try:
            self._wait_until_ready(process, port, started + timeout)
        except BaseException:
            self._stop_pid(process.pid, timeout=5.0)
            self.state_file.unlink(missing_ok=True)
            raise
        elapsed = time.monotonic() - started
        self.progress(f"the Kafka broker is ready at {state.bootstrap} (pid {process.pid}, {elapsed:.1f} s)")
        return state.bootstrap

    def _previous_ports(self) -> tuple[int, int] | None:
        try:
            return parse_listener_ports(self.properties_file.read_text())
        except OSError:
            return None

    def _format_storage_once(self, java: str, libs: Path) -> None:
        if (self.data_dir / "meta.properties").is_file():
            if self.secure and not self.tls_dir.is_dir():
                raise BrokerError(
                    f"{self.data_dir} was formatted without SCRAM users, so it cannot serve `--secure`; "
                    "the secure broker keeps its own home (kafka up --secure uses <USAGE_PIPELINE_HOME>/kafka-secure)"
                )
            return
        self.progress(f"formatting the broker's storage in {self.data_dir} (once) ...")
        command = [
            java, *JVM_OPTIONS, "-cp", f"{libs}/*", "kafka.tools.StorageTool",
            "format", "--standalone", "-t", new_cluster_id(), "-c", str(self.properties_file),
        ]
        if self.secure:
            from stream_app.broker.tls import scram_format_arguments

            command += scram_format_arguments(self.secure_material())

        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise BrokerError(
                f"formatting the Kafka storage in {self.data_dir} failed (exit {result.returncode}):\n"
                + _tail(result.stdout + result.stderr, LOG_TAIL_LINES)
            )

    def _spawn(self, java: str, libs: Path) -> subprocess.Popen[bytes]:
        command = [java, *JVM_OPTIONS, "-cp", f"{libs}/*", "kafka.Kafka", str(self.properties_file)]
        with self.log_file.open("ab") as log:
            log.write(f"{RUN_HEADER}{dt.datetime.now(dt.UTC).isoformat()} {' '.join(command)}\n".encode())
            log.flush()
            # A session of its own: Ctrl-C in the terminal that ran `kafka up` must not
            # reach the broker, which outlives that command.
            self._process = subprocess.Popen(
                command, cwd=self.home, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        return self._process

    def _wait_until_ready(self, process: subprocess.Popen[bytes], port: int, deadline: float) -> None:
        bootstrap = f"{HOST}:{port}"
        started = time.monotonic()
        next_note = started + PROGRESS_EVERY_SECONDS
        while True:
            exit_code = process.poll()
            if exit_code is not None:
                raise BrokerError(
                    f"the Kafka broker exited with code {exit_code} while starting; "
                    f"last lines of {self.log_file}:\n{self._log_tail()}"
                )
            # The TCP check first: it is quiet, while a Kafka client logs every refusal.
            if accepts_connections(port) and _answers_metadata(bootstrap, self.client_security()):
                return
            now = time.monotonic()
            if now >= deadline:
                raise BrokerError(
                    f"the Kafka broker did not answer at {bootstrap} within {deadline - started:.0f} s; "
                    f"last lines of {self.log_file}:\n{self._log_tail()}"
                )
            if now >= next_note:
                self.progress(f"waiting for the Kafka broker at {bootstrap} ({now - started:.0f} s) ...")
                next_note = now + PROGRESS_EVERY_SECONDS
            time.sleep(0.2)

    def _stop_pid(self, pid: int, timeout: float) -> None:
        def note() -> None:
            self.progress(f"the Kafka broker (pid {pid}) did not stop within {timeout:.0f} s; killing it")

        if not terminate(pid, timeout, note):
            raise BrokerError(f"the Kafka broker (pid {pid}) survived SIGKILL")

    # -- state --------------------------------------------------------------------------

    def _read_state(self) -> BrokerState | None:
        try:
            return parse_state(self.state_file.read_text())
        except OSError:
            return None

    def _running_state(self) -> BrokerState | None:
        state = self._read_state()
        if state is None or not self._is_our_broker(state.pid) or not accepts_connections(state.port):
            return None
        return state

    def _is_our_broker(self, pid: int) -> bool:
        """Whether `pid` is alive and is this home's JVM (pids get reused after a reboot)."""
        return runs_with_args(pid, b"kafka.Kafka", str(self.properties_file).encode())

    def _log_tail(self) -> str:
        try:
            return _tail(last_run(self.log_file.read_text(errors="replace")), LOG_TAIL_LINES)
        except OSError:
            return "(no log)"


def resolve_bootstrap(settings: PipelineSettings) -> str:
    """The Kafka bootstrap address: the configured one, else the running local broker's."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    status = LocalKafkaBroker(settings.kafka_home).status()
    if status.running and status.bootstrap:
        return status.bootstrap
    raise ConfigurationError(
        "KAFKA_BOOTSTRAP_SERVERS is not set and no local broker is running: "
        "set KAFKA_BOOTSTRAP_SERVERS=host:port or run `usage-pipeline kafka up`"
    )


def _answers_metadata(bootstrap: str, security: KafkaSecurity | None = None) -> bool:
    """Whether the broker answers a metadata request listing at least one broker."""
    try:
        return asyncio.run(_describe_brokers(bootstrap, security)) > 0
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"; the caller retries.
        return False


async def _describe_brokers(bootstrap: str, security: KafkaSecurity | None) -> int:
    # Imported here: `kafka status` and `kafka down` should not pay for aiokafka.
    from aiokafka.admin import AIOKafkaAdminClient

    from producers.kafka_security import kafka_client_kwargs

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **kafka_client_kwargs(security))
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster.get("brokers") or [])
    finally:
        await admin.close()


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: a secure broker's properties hold its SCRAM password."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)

