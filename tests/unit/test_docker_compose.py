"""Static checks of docker-compose.yml, Dockerfile and .dockerignore.

No Docker engine is needed: the files are parsed and checked against each other and against
the project's own declarations (pyproject.toml, stream_app.settings.PipelineSettings), so a
renamed setting, a moved listener or a dropped extra fails here rather than at `compose up`.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pydantic import AliasChoices

from stream_app.settings import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

KAFKA, CLICKHOUSE, WORKER = "kafka", "clickhouse", "worker"
CLICKHOUSE_HTTP_PORT = 8123

# Variables the worker may set that are not PipelineSettings fields, each read by something
# else in the container. Keep this list short and say who reads each one.
PASSTHROUGH_ENV = {
    "PYTHONUNBUFFERED": "CPython: unbuffered stdout/stderr so logs reach `docker logs` at once",
    "PYTHONDONTWRITEBYTECODE": "CPython: no .pyc files in the container",
    "TZ": "libc: container time zone (the pipeline itself stamps UTC)",
}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def literal(value: object) -> str:
    """A compose value as the container sees it (`$$` is compose's escape for `$`)."""
    text = str(value)
    assert "$" not in text.replace("$$", ""), (
        f"{text!r} uses compose variable interpolation; these files must be self-contained"
    )
    return text.replace("$$", "$")


def env_of(service: dict) -> dict[str, str]:
    """`environment:` in either compose form (mapping or list of NAME=value)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = [item.split("=", 1) if "=" in item else [item, None] for item in raw]
        raw = dict(pairs)
    return {str(k): ("" if v is None else literal(v)) for k, v in raw.items()}


def healthcheck_command(service: dict) -> str:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return literal(test)
    kind, *args = test
    assert kind in {"CMD", "CMD-SHELL"}, f"healthcheck test must start with CMD or CMD-SHELL, not {kind!r}"
    return " ".join(literal(a) for a in args) if kind == "CMD-SHELL" else shlex.join(literal(a) for a in args)


def published_ports(service: dict) -> list[dict]:
    """Each `ports:` entry as {host_ip, published, target} (short or long syntax)."""
    result = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            result.append(
                {
                    "host_ip": entry.get("host_ip", ""),
                    "published": str(entry.get("published", "")),
                    "target": str(entry["target"]),
                }
            )
            continue
        spec = str(entry).split("/", 1)[0]
        match = re.fullmatch(r"(?:(?:\[(?P<ip6>[^\]]+)\]|(?P<ip>[\d.]+)):)?(?:(?P<published>[\d-]*):)?(?P<target>[\d-]+)", spec)
        assert match, f"cannot parse port entry {entry!r}"
        result.append(
            {
                "host_ip": match["ip6"] or match["ip"] or "",
                "published": match["published"] or "",
                "target": match["target"],
            }
        )
    return result


def parse_listeners(value: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' -> {NAME: (host, port)}."""
    result = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        match = re.fullmatch(r"(?P<name>[A-Za-z0-9_]+)://(?P<host>\[[^\]]*\]|[^:]*):(?P<port>\d+)", item)
        assert match, f"cannot parse listener {item!r}"
        result[match["name"]] = (match["host"], int(match["port"]))
    return result


def kafka_listeners(services: dict) -> tuple[dict, dict, dict]:
    env = env_of(services[KAFKA])
    listeners = parse_listeners(env["KAFKA_LISTENERS"])
    advertised = parse_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    return listeners, advertised, protocols


def image_ref(image: str) -> tuple[str, str]:
    assert "@" not in image or ":" in image.split("@", 1)[0], f"{image!r}: keep a readable tag next to a digest"
    name, _, tag = image.split("@", 1)[0].rpartition(":")
    if "/" in tag or not name:  # "host:5000/repo" without a tag
        return image, ""
    return name, tag


def setting_env_names() -> set[str]:
    names = set()
    for field_name, info in PipelineSettings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(field_name.upper())
    return names


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """[(INSTRUCTION, arguments)] with comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def exec_form(args: str, what: str) -> list[str]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"{what} must use the exec (JSON) form so signals reach the process, got {args!r}")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), what
    return value


def dockerfile_env(dockerfile: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for keyword, args in dockerfile:
        if keyword != "ENV":
            continue
        for token in shlex.split(args):
            name, sep, value = token.partition("=")
            assert sep, f"use ENV NAME=value, got {args!r}"
            env[name] = value
    return env


def duration_seconds(value: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    total, pos = 0.0, 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value):
        assert match.start() == pos, f"cannot parse duration {value!r}"
        total += float(match[1]) * units[match[2]]
        pos = match.end()
    assert pos == len(value) and pos, f"cannot parse duration {value!r}"
    return total


# --------------------------------------------------------------------------- compose


def test_the_three_services_exist(services: dict) -> None:
    assert {KAFKA, CLICKHOUSE, WORKER} <= set(services)


def test_images_are_pinned(services: dict) -> None:
    for name, service in services.items():
        if "image" not in service:
            assert "build" in service, f"{name}: neither image nor build"
            continue
        repo, tag = image_ref(literal(service["image"]))
        assert tag, f"{name}: image {service['image']!r} has no tag (that means latest)"
        assert "latest" not in tag, f"{name}: image {service['image']!r} is not pinned"

    kafka_repo, kafka_tag = image_ref(services[KAFKA]["image"])
    assert kafka_repo in {"apache/kafka", "docker.io/apache/kafka"}
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", kafka_tag)
    assert match, f"kafka tag {kafka_tag!r} is not an exact x.y.z release"
    assert (int(match[1]), int(match[2])) >= (3, 7), "apache/kafka images start at 3.7 (KRaft)"

    ch_repo, ch_tag = image_ref(services[CLICKHOUSE]["image"])
    assert ch_repo in {"clickhouse/clickhouse-server", "docker.io/clickhouse/clickhouse-server"}
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+){0,2}(?:-alpine)?", ch_tag)
    assert match, f"clickhouse tag {ch_tag!r} is not a version"
    # The schema is shared with the embedded engine (26.x) and must run on 25.x+.
    assert int(match[1]) in {25, 26}, f"clickhouse major {match[1]} is outside 25.x/26.x"


def test_published_ports_bind_loopback_only(services: dict) -> None:
    for name, service in services.items():
        for port in published_ports(service):
            assert port["host_ip"] == "127.0.0.1", (
                f"{name}: port {port} is published on every interface; bind it to 127.0.0.1"
            )
            assert port["published"], f"{name}: port {port} gets a random host port on every interface"


def test_every_service_has_a_healthcheck(services: dict) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name}: no healthcheck"
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        test = check.get("test")
        assert test and test != ["NONE"], f"{name}: healthcheck has no test"
        for key in ("interval", "timeout"):
            if key in check:
                duration_seconds(str(check[key]))


def test_worker_waits_for_healthy_dependencies(services: dict) -> None:
    depends = services[WORKER].get("depends_on")
    assert isinstance(depends, dict), "worker depends_on must use the long form with conditions"
    for dependency in (KAFKA, CLICKHOUSE):
        assert dependency in depends, f"worker does not depend on {dependency}"
        assert depends[dependency].get("condition") == "service_healthy", (
            f"worker would start before {dependency} is healthy"
        )


def test_worker_can_be_scaled(services: dict) -> None:
    worker = services[WORKER]
    assert not worker.get("ports"), "a fixed host port makes `--scale worker=N` fail on port conflicts"
    assert "container_name" not in worker, "container_name makes `--scale worker=N` impossible"
    # Its web port stays inside the container (see the admin-token test below): nothing to expose.
    assert not worker.get("expose"), "the worker's pages hold every tenant's totals: keep them off the network"


def test_worker_runs_the_worker_command(services: dict, dockerfile: list[tuple[str, str]], pyproject: dict) -> None:
    worker = services[WORKER]
    build = worker.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    assert context, "worker must be built from this repository"
    dockerfile_name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (ROOT / context / dockerfile_name).resolve() == DOCKERFILE

    def as_argv(value: object) -> list[str]:
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    image_entrypoint = image_cmd = None
    for keyword, args in dockerfile:
        if keyword == "ENTRYPOINT":
            image_entrypoint = exec_form(args, "ENTRYPOINT")
        elif keyword == "CMD":
            image_cmd = exec_form(args, "CMD")
    entrypoint = as_argv(worker["entrypoint"]) if "entrypoint" in worker else image_entrypoint or []
    # compose's entrypoint resets the image's CMD, as Docker does.
    command = as_argv(worker["command"]) if "command" in worker else ([] if "entrypoint" in worker else image_cmd or [])
    script = next(iter(pyproject["project"]["scripts"]))
    assert entrypoint + command == [script, "worker"], f"worker container would run {entrypoint + command}"


def test_worker_kafka_address_is_the_advertised_internal_listener(services: dict) -> None:
    listeners, advertised, protocols = kafka_listeners(services)
    kafka_names = {KAFKA, services[KAFKA].get("hostname", KAFKA)}
    bootstrap = env_of(services[WORKER])["KAFKA_BOOTSTRAP_SERVERS"]
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        assert host in kafka_names, f"worker bootstraps from {host!r}, not the kafka service"
        matches = [name for name, addr in advertised.items() if addr == (host, int(port))]
        assert matches, f"{server} is not advertised by kafka ({advertised}); clients would be sent elsewhere"
        (name,) = matches
        assert name in listeners and listeners[name][1] == int(port), (
            f"listener {name} is advertised on {port} but kafka listens on {listeners.get(name)}"
        )
        assert protocols.get(name) == "PLAINTEXT", f"worker has no TLS/SASL settings; {name} is {protocols.get(name)}"
        assert name not in env_of(services[KAFKA])["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","), (
            "worker must not talk to the controller listener"
        )


def test_kafka_listeners_are_consistent(services: dict) -> None:
    kafka = services[KAFKA]
    env = env_of(kafka)
    listeners, advertised, protocols = kafka_listeners(services)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, "single combined KRaft node"
    assert not any(k.startswith("KAFKA_ZOOKEEPER") for k in env), "KRaft: no ZooKeeper"
    assert set(listeners) <= set(protocols), "every listener needs a security protocol"
    assert set(advertised) <= set(listeners), "every advertised listener must exist"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised

    controller_names = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    assert not set(controller_names) & set(advertised), "a broker must not advertise its controller listener"
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1
    node_id, _, address = voters[0].partition("@")
    assert node_id == str(env["KAFKA_NODE_ID"]), "the only voter must be this node"
    assert int(address.rpartition(":")[2]) == listeners[controller_names[0]][1], "voter port is not the controller listener"

    for key, value in env.items():
        if re.fullmatch(r"KAFKA_\w*(REPLICATION_FACTOR|MIN_ISR|MIN_INSYNC_REPLICAS)", key):
            assert int(value) == 1, f"{key}={value} cannot be met by a single broker"
    assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 1  # default 3 would stall groups
    assert int(env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"]) == 0

    # Host-facing listeners: advertised on loopback and published there on the same port.
    published = {(p["published"], p["target"]) for p in published_ports(kafka)}
    host_facing = {n: a for n, a in advertised.items() if a[0] in {"127.0.0.1", "localhost"}}
    assert host_facing, "no listener is advertised for clients on the host"
    for name, (_, port) in host_facing.items():
        assert (str(port), str(listeners[name][1])) in published, (
            f"{name} is advertised as 127.0.0.1:{port} but host port {port} is not mapped to "
            f"container port {listeners[name][1]} ({published})"
        )
    # The healthcheck must probe a port the broker listens on.
    match = re.search(r"--bootstrap-server[ =]\S*?:(\d+)", healthcheck_command(kafka))
    assert match and "kafka-broker-api-versions" in healthcheck_command(kafka)
    assert int(match[1]) in {port for name, (_, port) in listeners.items() if name not in controller_names}


def test_worker_clickhouse_url_matches_the_server(services: dict) -> None:
    server_env = env_of(services[CLICKHOUSE])
    url = urlsplit(env_of(services[WORKER])["CLICKHOUSE_URL"])
    assert url.scheme in {"http", "https"}
    assert url.hostname == CLICKHOUSE, f"worker writes to {url.hostname!r}, not the clickhouse service"
    assert url.port == CLICKHOUSE_HTTP_PORT, "the HTTP interface is on 8123 (9000 is the native protocol)"
    assert unquote(url.username or "") == server_env["CLICKHOUSE_USER"]
    assert unquote(url.password or "") == server_env["CLICKHOUSE_PASSWORD"]
    assert url.path.strip("/") == server_env["CLICKHOUSE_DB"], "worker's database is not the one the server creates"
    assert server_env["CLICKHOUSE_USER"] != "default" and server_env["CLICKHOUSE_PASSWORD"]


def test_clickhouse_service_setup(services: dict, compose: dict) -> None:
    clickhouse = services[CLICKHOUSE]
    nofile = (clickhouse.get("ulimits") or {}).get("nofile")
    assert nofile, "clickhouse needs a raised nofile ulimit"
    limits = [nofile] if isinstance(nofile, int) else [nofile["soft"], nofile["hard"]]
    assert min(limits) >= 262144
    assert {(p["published"], p["target"]) for p in published_ports(clickhouse)} >= {("8123", "8123")}
    assert named_volume_targets(clickhouse, compose) >= {"/var/lib/clickhouse"}


def test_kafka_data_is_on_its_named_volume(services: dict, compose: dict) -> None:
    log_dirs = env_of(services[KAFKA]).get("KAFKA_LOG_DIRS", "/tmp/kraft-combined-logs")
    targets = named_volume_targets(services[KAFKA], compose)
    for log_dir in log_dirs.split(","):
        assert any(log_dir == t or log_dir.startswith(t.rstrip("/") + "/") for t in targets), (
            f"kafka writes {log_dir}, which is on none of its named volumes {targets}"
        )


def named_volume_targets(service: dict, compose: dict) -> set[str]:
    declared = set(compose.get("volumes") or {})
    targets = set()
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source"), volume["target"]
        else:
            source, _, rest = str(volume).partition(":")
            target = rest.split(":", 1)[0]
        if source in declared:
            targets.add(target)
    return targets


def worker_web_port(worker: dict) -> int:
    default = PipelineSettings.model_fields["worker_web_port"].default
    return int(env_of(worker).get("USAGE_WORKER_WEB_PORT", default))


def test_worker_environment_names_real_settings(services: dict) -> None:
    known = setting_env_names()
    for name in env_of(services[WORKER]):
        assert name in known or name in PASSTHROUGH_ENV, (
            f"worker sets {name}, which no PipelineSettings field reads (typo or renamed setting?)"
        )


def test_worker_environment_is_valid_for_the_settings(services: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    known = setting_env_names()
    for name in known:
        monkeypatch.delenv(name, raising=False)
    values = {k: v for k, v in env_of(services[WORKER]).items() if k in known}
    settings = PipelineSettings(**values)  # raises on a bad URL scheme, port, number...
    assert settings.kafka_bootstrap_servers and settings.clickhouse_url


def test_worker_healthcheck_reaches_its_web_server(services: dict) -> None:
    worker = services[WORKER]
    env = env_of(worker)
    host = env.get("USAGE_WORKER_WEB_HOST", PipelineSettings.model_fields["worker_web_host"].default)
    assert host == "127.0.0.1", f"worker web server on {host}: tenants' totals would be on the network"
    command = healthcheck_command(worker)
    assert not re.search(r"\b(curl|wget)\b", command), "python:*-slim has neither curl nor wget"
    match = re.search(r"http://(?:127\.0\.0\.1|localhost):(\d+)/health\b", command)
    assert match, f"worker healthcheck does not request /health: {command!r}"
    assert int(match[1]) == worker_web_port(worker)
    assert duration_seconds(str(worker.get("stop_grace_period", "10s"))) >= 30, (
        "the worker needs time to finish a chunk's write and commit on SIGTERM"
    )


def test_the_admin_token_comes_from_a_git_ignored_file_never_from_compose(services: dict) -> None:
    worker = services[WORKER]
    assert "USAGE_ADMIN_TOKEN" not in env_of(worker), "a token written in docker-compose.yml is no secret"
    env_files = [entry["path"] if isinstance(entry, dict) else entry for entry in worker.get("env_file", [])]
    assert env_files == ["./worker.secrets.env"]
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "worker.secrets.env" in ignored and "worker.secrets.env" in DOCKERIGNORE.read_text().splitlines()
    assert all(not any(p.get("target") == worker_web_port(worker) for p in published_ports(s)) for s in services.values())


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_base_image_satisfies_requires_python(dockerfile: list[tuple[str, str]], pyproject: dict) -> None:
    froms = [args.split()[0] for keyword, args in dockerfile if keyword == "FROM"]
    match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", froms[-1])
    assert match, f"final stage {froms[-1]!r} is not a pinned python slim image"
    version = f"{match[1]}.{match[2]}"
    assert version in SpecifierSet(pyproject["project"]["requires-python"])


def test_dockerfile_installs_the_stream_extra(dockerfile: list[tuple[str, str]], pyproject: dict) -> None:
    extras = set()
    for keyword, args in dockerfile:
        if keyword == "RUN" and re.search(r"\bpip\b.*\binstall\b", args):
            for match in re.finditer(r"""['"]?\.\[([\w,\s-]+)\]['"]?""", args):
                extras.update(e.strip() for e in match[1].split(","))
    assert "stream" in extras, "the image must `pip install '.[stream]'` (the worker's dependencies)"
    assert extras <= set(pyproject["project"]["optional-dependencies"]), (
        f"Dockerfile installs extras {extras} not all declared in pyproject.toml"
    )


def test_dockerfile_entrypoint_is_the_console_script(dockerfile: list[tuple[str, str]], pyproject: dict) -> None:
    entrypoints = [exec_form(args, "ENTRYPOINT") for keyword, args in dockerfile if keyword == "ENTRYPOINT"]
    assert entrypoints, "no ENTRYPOINT"
    scripts = pyproject["project"]["scripts"]
    assert entrypoints[-1][0] in scripts, f"ENTRYPOINT {entrypoints[-1]} is not a console script of {set(scripts)}"
    module, _, attribute = scripts[entrypoints[-1][0]].partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))
    commands = [exec_form(args, "CMD") for keyword, args in dockerfile if keyword == "CMD"]
    assert commands, "no CMD"
    # `docker run <image>` with no arguments starts the worker.
    assert entrypoints[-1] + commands[-1] == [entrypoints[-1][0], "worker"], (
        f"the image's default command is {entrypoints[-1] + commands[-1]}"
    )


def test_dockerfile_runs_as_non_root_with_settings_env(dockerfile: list[tuple[str, str]]) -> None:
    users = [args.split(":")[0] for keyword, args in dockerfile if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the image must not run as root"
    workdirs = [args for keyword, args in dockerfile if keyword == "WORKDIR"]
    assert workdirs and workdirs[-1] == "/app"
    env = dockerfile_env(dockerfile)
    known = setting_env_names()
    for name in env:
        assert name in known or name in PASSTHROUGH_ENV or name.startswith("PIP_"), (
            f"Dockerfile sets {name}, which nothing reads"
        )
    assert env.get("USAGE_PIPELINE_HOME") == "/data"
    # The non-root user must own the home it writes to.
    assert any(keyword == "RUN" and re.search(r"chown\b[^&;]*/data\b", args) for keyword, args in dockerfile)


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore glob: `*`/`?` stay within a path segment, `**` spans segments."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            close = pattern.index("]", i)
            out, i = out + pattern[i : close + 1], close + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: a pattern matching a path or any of its parent directories excludes
    it; the last matching pattern wins and `!` re-includes."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _dockerignore_regex(pattern.removeprefix("!").strip().strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_the_build_inputs_and_drops_local_state(pyproject: dict) -> None:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for path in (".git/HEAD", ".venv/bin/python", ".usage-pipeline/clickhouse/x",
                 ".pytest_cache/v", "stream_app/__pycache__/cli.cpython-311.pyc"):
        assert dockerignore_excludes(patterns, path), f".dockerignore lets {path} into the build context"

    needed = ["pyproject.toml"]
    if pyproject["project"].get("readme"):
        needed.append(pyproject["project"]["readme"])
    for package in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        needed.append(f"{package.rstrip('*')}/__init__.py")
    for package, globs in pyproject["tool"]["setuptools"].get("package-data", {}).items():
        needed.extend(f"{package}/{g}" for g in globs)
    needed.extend(str(p.relative_to(ROOT)) for p in (ROOT / "schemas").glob("*.json"))
    for path in needed:
        assert not dockerignore_excludes(patterns, path), f".dockerignore drops {path}, which the build needs"
