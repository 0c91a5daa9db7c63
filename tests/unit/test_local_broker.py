"""The local Kafka broker's pure parts and its bookkeeping, without starting a JVM."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_app.broker import jars, local
from stream_app.broker.local import (
    BrokerState,
    LocalKafkaBroker,
    choose_ports,
    format_state,
    new_cluster_id,
    parse_java_major,
    parse_listener_ports,
    parse_state,
    render_server_properties,
    resolve_bootstrap,
)
from stream_app.errors import BrokerError, ConfigurationError
from stream_app.settings import PipelineSettings


def properties_dict(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def quiet(message: str) -> None:
    """A progress sink for brokers under test."""


# -- server.properties ---------------------------------------------------------------------


def test_properties_describe_one_kraft_node_on_loopback(tmp_path):
    props = properties_dict(render_server_properties(29092, 29093, tmp_path / "data"))

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:29093"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "4"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_listener_ports_are_read_back_from_rendered_properties(tmp_path):
    assert parse_listener_ports(render_server_properties(9092, 9093, tmp_path)) == (9092, 9093)
    assert parse_listener_ports("node.id=1\n") is None


# -- state.json ----------------------------------------------------------------------------


def test_state_round_trips():
    state = BrokerState(pid=4321, port=9092, controller_port=9093, started_at="2025-01-02T03:04:05+00:00")

    assert parse_state(format_state(state)) == state
    assert state.bootstrap == "127.0.0.1:9092"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"pid": 1, "port": 9092, "controller_port": 9093}',
        '{"pid": "1", "port": 9092, "controller_port": 9093, "started_at": "x"}',
        '{"pid": 0, "port": 9092, "controller_port": 9093, "started_at": "x"}',
        '{"pid": 1, "port": true, "controller_port": 9093, "started_at": "x"}',
        '{"pid": 1, "port": 9092, "controller_port": 9093, "started_at": 5}',
    ],
)
def test_invalid_state_reads_as_none(text):
    assert parse_state(text) is None


# -- small pure helpers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ("bash: java: command not found", None),
    ],
)
def test_java_major_version(output, major):
    assert parse_java_major(output) == major


def test_log_tail_comes_from_the_latest_start_only():
    log = f"{local.RUN_HEADER}old start\nold error{local.RUN_HEADER}new start\nnew error\n"

    assert local.last_run(log) == f"{local.RUN_HEADER}new start\nnew error\n"
    assert local.last_run("no header\n") == "no header\n"


def test_cluster_id_is_a_kafka_uuid():
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_requested_port_wins_and_controller_takes_the_next():
    assert choose_ports(30000, (9092, 9093), lambda port: True) == (30000, 30001)


def test_previous_port_is_reused_when_free():
    assert choose_ports(None, (31000, 31555), lambda port: True) == (31000, 31001)


def test_controller_port_is_any_free_one_when_the_next_is_taken():
    port, controller_port = choose_ports(31000, None, lambda port: port != 31001)

    assert port == 31000
    assert controller_port not in (31000, 31001)


def test_default_port_when_nothing_was_used_before():
    assert choose_ports(None, None, lambda port: True) == (9092, 9093)


def test_taken_ports_fall_back_to_free_ones():
    port, controller_port = choose_ports(None, (31000, 31001), lambda port: False)

    assert port not in (31000, 9092)
    assert controller_port != port


def test_jar_cache_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    assert local.default_jar_cache() == tmp_path / "usage-pipeline" / f"kafka-{local.KAFKA_VERSION}"


def test_pom_ships_with_the_package():
    pom = (Path(local.__file__).parent / local.POM_RESOURCE).read_text()

    assert f"<version>{local.KAFKA_VERSION}</version>" in pom
    assert "<artifactId>kafka_2.13</artifactId>" in pom


# -- missing tools -------------------------------------------------------------------------


def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake_bin(tmp_path, monkeypatch) -> Path:
    """A PATH holding only the fake tools a test writes (plus sh for their scripts)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/bin{os.pathsep}/usr/bin")
    monkeypatch.setattr(jars.shutil, "which", lambda name: _which_in(bin_dir, name))
    return bin_dir


def _which_in(bin_dir: Path, name: str) -> str | None:
    path = bin_dir / name
    return str(path) if path.exists() else None


def test_missing_java_names_the_install_command(tmp_path, fake_bin):
    broker = LocalKafkaBroker(tmp_path / "home", jar_cache=tmp_path / "jars", progress=quiet)

    with pytest.raises(BrokerError, match="apt-get install -y openjdk-17-jre-headless maven"):
        broker.ensure_jars()


def test_old_java_is_refused(tmp_path, fake_bin):
    fake_tool(fake_bin, "java", """echo 'java version "1.8.0_392"' >&2\n""")
    broker = LocalKafkaBroker(tmp_path / "home", jar_cache=tmp_path / "jars", progress=quiet)

    with pytest.raises(BrokerError, match="needs Java 17"):
        broker.ensure_jars()


def test_missing_maven_names_the_install_command(tmp_path, fake_bin):
    fake_tool(fake_bin, "java", """echo 'openjdk version "17.0.15"' >&2\n""")
    broker = LocalKafkaBroker(tmp_path / "home", jar_cache=tmp_path / "jars", progress=quiet)

    with pytest.raises(BrokerError, match=r"`mvn`.*apt-get install"):
        broker.ensure_jars()


def test_failing_maven_reports_its_last_lines(tmp_path, fake_bin):
    fake_tool(fake_bin, "java", """echo 'openjdk version "17.0.15"' >&2\n""")
    fake_tool(fake_bin, "mvn", """echo 'Could not transfer artifact org.apache.kafka:kafka_2.13'\nexit 1\n""")
    broker = LocalKafkaBroker(tmp_path / "home", jar_cache=tmp_path / "jars", progress=quiet)

    with pytest.raises(BrokerError, match="Could not transfer artifact") as caught:
        broker.ensure_jars()

    assert "exit 1" in str(caught.value)
    assert not (tmp_path / "jars" / "libs").exists()


def test_cached_jars_need_no_maven(tmp_path, fake_bin):
    fake_tool(fake_bin, "java", """echo 'openjdk version "17.0.15"' >&2\n""")
    libs = tmp_path / "jars" / "libs"
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{local.KAFKA_VERSION}.jar").touch()
    broker = LocalKafkaBroker(tmp_path / "home", jar_cache=tmp_path / "jars", progress=quiet)

    assert broker.ensure_jars() == libs


# -- finding the running broker again ------------------------------------------------------

FAKE_BROKER = """
import socket, sys, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("listening", flush=True)
time.sleep(120)
"""


@pytest.fixture
def fake_running_broker(tmp_path) -> Iterator[tuple[LocalKafkaBroker, subprocess.Popen[bytes]]]:
    """A process that looks like this home's broker (same command line, a listening port).

    Its home is where settings with USAGE_PIPELINE_HOME=tmp_path look for the broker.
    """
    broker = LocalKafkaBroker(tmp_path / "kafka", progress=quiet)
    broker.home.mkdir(parents=True)
    port = local.find_free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", FAKE_BROKER, str(port), "kafka.Kafka", str(broker.properties_file)],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"listening\n"
        state = BrokerState(pid=process.pid, port=port, controller_port=port + 1, started_at="2025-01-01T00:00:00Z")
        broker.state_file.write_text(format_state(state))
        yield broker, process
    finally:
        process.kill()
        process.wait()


def test_recorded_live_broker_is_found_and_up_returns_it(fake_running_broker):
    broker, process = fake_running_broker

    status = broker.status()

    assert status.running and status.pid == process.pid
    assert broker.up() == status.bootstrap


def test_down_stops_the_recorded_broker_and_forgets_it(fake_running_broker):
    broker, process = fake_running_broker

    assert broker.down() is True

    assert process.wait(timeout=5) is not None
    assert not broker.state_file.exists()
    assert broker.status().running is False
    assert broker.down() is False


def test_a_reused_pid_is_not_taken_for_the_broker(tmp_path):
    broker = LocalKafkaBroker(tmp_path / "home", progress=quiet)
    broker.home.mkdir(parents=True)
    # This test process is alive but is not a Kafka broker.
    state = BrokerState(pid=os.getpid(), port=local.find_free_port(), controller_port=1, started_at="x")
    broker.state_file.write_text(format_state(state))

    assert broker.status().running is False
    assert broker.down() is False
    assert not broker.state_file.exists()


def test_dead_pid_is_not_running(tmp_path):
    broker = LocalKafkaBroker(tmp_path / "home", progress=quiet)
    broker.home.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    broker.state_file.write_text(format_state(BrokerState(dead.pid, 9092, 9093, "x")))

    assert broker.status().running is False


# -- resolve_bootstrap ---------------------------------------------------------------------


@pytest.fixture
def no_kafka_env(monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("USAGE_PIPELINE_HOME", raising=False)


def test_configured_bootstrap_wins(tmp_path, no_kafka_env):
    settings = PipelineSettings(USAGE_PIPELINE_HOME=tmp_path, KAFKA_BOOTSTRAP_SERVERS="kafka-1:9092,kafka-2:9092")

    assert resolve_bootstrap(settings) == "kafka-1:9092,kafka-2:9092"


def test_no_configured_bootstrap_and_no_broker_says_what_to_do(tmp_path, no_kafka_env):
    settings = PipelineSettings(USAGE_PIPELINE_HOME=tmp_path)

    with pytest.raises(ConfigurationError, match="KAFKA_BOOTSTRAP_SERVERS is not set") as caught:
        resolve_bootstrap(settings)

    assert "usage-pipeline kafka up" in str(caught.value)


def test_running_local_broker_is_used_when_nothing_is_configured(fake_running_broker, tmp_path, no_kafka_env):
    broker, _ = fake_running_broker
    settings = PipelineSettings(USAGE_PIPELINE_HOME=tmp_path)
    assert settings.kafka_home == broker.home

    assert resolve_bootstrap(settings) == broker.status().bootstrap
