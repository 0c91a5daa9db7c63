"""A real Apache Kafka broker run as a local JVM process: no Docker, no ZooKeeper.

`usage-pipeline kafka up` and the integration tests use it when no
`KAFKA_BOOTSTRAP_SERVERS` is configured. The broker's jars come from Maven Central
(`kafka-runtime.pom.xml` beside this module), resolved once into a cache shared by every
home directory; the broker runs in KRaft mode as a single combined broker+controller
listening on 127.0.0.1 only.

Layout of a broker home:

    home/server.properties   rendered on every start (ports may change)
    home/data/               the log dirs, formatted once (data/meta.properties)
    home/broker.log          the JVM's stdout and stderr
    home/state.json          pid, ports and start time of the running broker

The pure parts (rendering the properties, parsing the state file, choosing ports) are
plain functions so they can be tested without a JVM.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import fcntl
import importlib.resources
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stream_app.errors import BrokerError, ConfigurationError

if TYPE_CHECKING:
    from stream_app.settings import PipelineSettings

KAFKA_VERSION = "4.1.1"
MIN_JAVA_MAJOR = 17
DEFAULT_PORT = 9092
HOST = "127.0.0.1"
POM_RESOURCE = "kafka-runtime.pom.xml"
INSTALL_HINT = "install with: apt-get install -y openjdk-17-jre-headless maven"

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
LOG_TAIL_LINES = 30
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


def render_server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    """The broker's server.properties: one KRaft node, both roles, 127.0.0.1 only."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "4",
        # One node: every internal topic must make do with one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # Consumers of a fresh group start at once instead of after 3 s.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
    }
    lines = ["# Written by stream_app.broker.local on every start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def parse_listener_ports(properties: str) -> tuple[int, int] | None:
    """(port, controller port) from a rendered server.properties, or None if absent."""
    match = re.search(
        r"^listeners=PLAINTEXT://[^:]+:(\d+),CONTROLLER://[^:]+:(\d+)\s*$", properties, re.MULTILINE
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


def parse_java_major(version_output: str) -> int | None:
    """The major version in `java -version` output ("1.8.0_392" -> 8, "17.0.15" -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def choose_ports(
    requested: int | None, previous: tuple[int, int] | None, is_free: Callable[[int], bool]
) -> tuple[int, int]:
    """(port, controller port) for a start.

    A requested port is used as given. Otherwise the port of the last start is reused
    when free, so the bootstrap address people configured keeps working; else 9092 when
    free; else any free port. The controller takes the next port if free, else any.
    """
    if requested is not None:
        port = requested
    elif previous is not None and is_free(previous[0]):
        port = previous[0]
    elif is_free(DEFAULT_PORT):
        port = DEFAULT_PORT
    else:
        port = find_free_port()
    # The controller port is only used inside the broker, so any free one will do.
    if port + 1 < 65_536 and is_free(port + 1):
        return port, port + 1
    return port, _free_port_other_than(port)


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


def default_jar_cache() -> Path:
    """Where the broker's jars are kept: shared by every home and every test session."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "usage-pipeline" / f"kafka-{KAFKA_VERSION}"


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether the broker could bind `port` on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The JVM binds with SO_REUSEADDR, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def accepts_connections(port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def last_run(log_text: str) -> str:
    """The part of broker.log written by the latest start (each start writes a header)."""
    _, marker, last = log_text.rpartition(RUN_HEADER)
    return marker + last if marker else log_text


def _free_port_other_than(port: int) -> int:
    while True:
        candidate = find_free_port()
        if candidate != port:
            return candidate


def _print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class LocalKafkaBroker:
    """One Kafka broker (KRaft, broker+controller) living in `home`, run as a JVM process.

    `up()` and `down()` work across processes: the running broker is found again through
    `home/state.json`, so `usage-pipeline kafka up` can return while the broker runs on.
    The blocking methods must not be called from inside a running event loop (use
    `asyncio.to_thread`).
    """

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        jar_cache: Path | None = None,
        progress: Callable[[str], None] = _print_progress,
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.port = port
        self.jar_cache = (jar_cache or default_jar_cache()).expanduser().resolve()
        self.progress = progress
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
        return self.jar_cache / "libs"

    # -- jars ---------------------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Make sure Java 17+ is there and the broker's jars are cached; return their dir.

        The first call resolves them with Maven from Maven Central (~45 MB); later calls,
        from any home or process, find them in the cache.
        """
        self._java()
        return self._cached_jars()

    def _cached_jars(self) -> Path:
        if self._jars_present():
            return self.libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                f"Maven (`mvn`) is needed once to fetch the Kafka jars and is not on PATH; {INSTALL_HINT}"
            )
        self.jar_cache.mkdir(parents=True, exist_ok=True)
        # Two test sessions may start at once: one downloads, the other waits for it.
        with _file_lock(self.jar_cache / ".lock"):
            if not self._jars_present():
                self._fetch_jars(mvn)
        return self.libs_dir

    def _jars_present(self) -> bool:
        return (self.libs_dir / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()

    def _fetch_jars(self, mvn: str) -> None:
        pom = self.jar_cache / POM_RESOURCE
        pom.write_bytes(importlib.resources.files("stream_app.broker").joinpath(POM_RESOURCE).read_bytes())
        # Download into a side directory and rename it at the end, so an interrupted
        # download never looks like a complete set of jars.
        partial = self.jar_cache / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        self.progress(f"fetching Kafka {KAFKA_VERSION} jars with Maven into {self.libs_dir} (once) ...")
        started = time.monotonic()
        command = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
        ]
        try:
            result = subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"Maven did not finish fetching the Kafka jars within {exc.timeout:.0f} s") from None
        if result.returncode != 0:
            output = _tail((result.stdout or "") + (result.stderr or ""), LOG_TAIL_LINES)
            raise BrokerError(
                f"Maven could not fetch the Kafka {KAFKA_VERSION} jars (exit {result.returncode}); "
                f"is Maven Central reachable? `{' '.join(command)}` said:\n{output}"
            )
        partial.rename(self.libs_dir)
        self.progress(f"fetched the Kafka jars in {time.monotonic() - started:.1f} s")

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise BrokerError(
                f"Java {MIN_JAVA_MAJOR}+ is needed to run the Kafka broker and `java` is not on PATH; {INSTALL_HINT}"
            )
        result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
        major = parse_java_major(result.stderr + result.stdout)
        if major is None or major < MIN_JAVA_MAJOR:
            found = (result.stderr or result.stdout).strip().splitlines()[:1]
            raise BrokerError(
                f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA_MAJOR}+, `{java}` is {found or 'unknown'}; {INSTALL_HINT}"
            )
        return java

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
        java = self._java()
        libs = self._cached_jars()
        previous = self._previous_ports()
        port, controller_port = choose_ports(self.port, previous, port_is_free)
        if not port_is_free(port):
            raise BrokerError(f"port {HOST}:{port} is taken; choose another with --port")
        self.properties_file.write_text(render_server_properties(port, controller_port, self.data_dir))
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
            return
        self.progress(f"formatting the broker's storage in {self.data_dir} (once) ...")
        command = [
            java, *JVM_OPTIONS, "-cp", f"{libs}/*", "kafka.tools.StorageTool",
            "format", "--standalone", "-t", new_cluster_id(), "-c", str(self.properties_file),
        ]
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
            if accepts_connections(port) and _answers_metadata(bootstrap):
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
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._wait_for_exit(pid, timeout):
            return
        self.progress(f"the Kafka broker (pid {pid}) did not stop within {timeout:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_for_exit(pid, 10.0):
            raise BrokerError(f"the Kafka broker (pid {pid}) survived SIGKILL")

    def _wait_for_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _process_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

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
        if not _process_alive(pid):
            return False
        cmdline = Path(f"/proc/{pid}/cmdline")
        if not cmdline.parent.is_dir():
            return True  # No /proc (macOS): the pid is all there is to go on.
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in args and str(self.properties_file).encode() in args

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


def _answers_metadata(bootstrap: str) -> bool:
    """Whether the broker answers a metadata request listing at least one broker."""
    try:
        return asyncio.run(_describe_brokers(bootstrap)) > 0
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"; the caller retries.
        return False


async def _describe_brokers(bootstrap: str) -> int:
    # Imported here: `kafka status` and `kafka down` should not pay for aiokafka.
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster.get("brokers") or [])
    finally:
        await admin.close()


def _process_alive(pid: int) -> bool:
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


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself contain spaces.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
