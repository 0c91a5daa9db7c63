"""`load_settings`: environment in, one frozen settings object out; errors name the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from stream_app.errors import ConfigurationError, PipelineError
from stream_app.settings import PipelineSettings, load_settings

ENV_NAMES = [
    "USAGE_PIPELINE_HOME", "KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL", "USAGE_EVENTS_TOPIC", "USAGE_DLQ_TOPIC",
    "USAGE_TOPIC_PARTITIONS", "USAGE_CONSUMER_GROUP", "USAGE_WINDOW_SECONDS", "USAGE_CHUNK_MAX_MESSAGES",
    "USAGE_CHUNK_WITHIN_SECONDS", "USAGE_WORKER_WEB_PORT", "USAGE_WORKER_WEB_HOST",
    "USAGE_SINK_RETRY_INITIAL_SECONDS", "USAGE_SINK_RETRY_MAX_SECONDS", "USAGE_SINK_FAULT_PLAN",
    "USAGE_MAX_FUTURE_SKEW_SECONDS", "USAGE_LOG_LEVEL", "CLICKHOUSE_CA_FILE", "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEYFILE", "USAGE_TOPIC_REPLICATION_FACTOR", "USAGE_ADMIN_TOKEN", "USAGE_INGEST_KEYS_FILE",
    "USAGE_CONTEXT_DENY_KEYS", "USAGE_REJECTIONS_TTL_DAYS", "USAGE_CHUNK_MAX_BYTES",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No setting leaks in from the machine running the tests; relative paths resolve in tmp."""
    for name in list(os.environ):
        if name.upper() in ENV_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def config_error(**overrides) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**overrides)
    assert isinstance(caught.value, PipelineError)
    return str(caught.value)


def test_defaults(tmp_path):
    settings = load_settings()

    assert settings.home == tmp_path / ".usage-pipeline"
    assert settings.kafka_bootstrap_servers is None
    assert settings.clickhouse_url is None
    assert (settings.events_topic, settings.dlq_topic) == ("llm.usage.events", "llm.usage.events.dlq")
    assert settings.window_seconds == 60
    assert settings.max_future_skew_seconds == 300
    assert settings.sink_fault_plan == ""


def test_home_variable_of_the_shell_does_not_leak_into_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "someone"))

    assert load_settings().home == tmp_path / ".usage-pipeline"


def test_default_clickhouse_url_is_the_embedded_store_under_home(monkeypatch, tmp_path):
    monkeypatch.setenv("USAGE_PIPELINE_HOME", str(tmp_path / "state"))

    settings = load_settings()

    assert settings.home == tmp_path / "state"
    assert settings.resolved_clickhouse_url == f"chdb://{tmp_path}/state/clickhouse"
    assert settings.kafka_home == tmp_path / "state" / "kafka"


def test_relative_home_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.setenv("USAGE_PIPELINE_HOME", "run/state")

    settings = load_settings()

    assert settings.home == tmp_path / "run" / "state"
    assert settings.resolved_clickhouse_url == f"chdb://{tmp_path}/run/state/clickhouse"


def test_tilde_in_home_means_the_user_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "alice"))
    monkeypatch.setenv("USAGE_PIPELINE_HOME", "~/usage")

    assert load_settings().home == tmp_path / "alice" / "usage"


def test_explicit_clickhouse_url_wins(monkeypatch):
    monkeypatch.setenv("CLICKHOUSE_URL", "http://default:pw@ch.internal:8123/billing")

    assert load_settings().resolved_clickhouse_url == "http://default:pw@ch.internal:8123/billing"


def test_empty_clickhouse_url_means_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CLICKHOUSE_URL", "")

    settings = load_settings()

    assert settings.clickhouse_url is None
    assert settings.resolved_clickhouse_url == f"chdb://{tmp_path}/.usage-pipeline/clickhouse"


@pytest.mark.parametrize("url", ["ftp://h/db", "clickhouse://h:9000", "postgres://x"])
def test_clickhouse_url_with_a_bad_scheme_is_named(monkeypatch, url):
    monkeypatch.setenv("CLICKHOUSE_URL", url)

    message = config_error()

    assert "CLICKHOUSE_URL" in message
    assert f"'{url.split(':')[0]}'" in message  # the scheme, not the URL: it may hold a password
    assert "chdb:///" in message  # says what to use instead


def test_environment_values_are_read(monkeypatch):
    monkeypatch.setenv("USAGE_WINDOW_SECONDS", "300")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9093")
    monkeypatch.setenv("USAGE_SINK_FAULT_PLAN", "fail_inserts=3")
    monkeypatch.setenv("USAGE_CHUNK_WITHIN_SECONDS", "0.25")

    settings = load_settings()

    assert settings.window_seconds == 300
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9093"
    assert settings.sink_fault_plan == "fail_inserts=3"
    assert settings.chunk_within_seconds == 0.25


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USAGE_WINDOW_SECONDS", "0"),
        ("USAGE_WINDOW_SECONDS", "86401"),
        ("USAGE_WINDOW_SECONDS", "a minute"),
        ("USAGE_TOPIC_PARTITIONS", "0"),
        ("USAGE_CHUNK_MAX_MESSAGES", "-1"),
        ("USAGE_CHUNK_WITHIN_SECONDS", "0"),
        ("USAGE_CHUNK_MAX_BYTES", "1000"),
        ("USAGE_WORKER_WEB_PORT", "70000"),
        ("USAGE_SINK_RETRY_INITIAL_SECONDS", "0"),
        ("USAGE_MAX_FUTURE_SKEW_SECONDS", "-5"),
        ("USAGE_CONSUMER_GROUP", ""),
    ],
)
def test_bad_environment_value_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    message = config_error()

    assert f"\n  {name}: " in message


def test_every_problem_is_listed(monkeypatch):
    monkeypatch.setenv("USAGE_WINDOW_SECONDS", "0")
    monkeypatch.setenv("USAGE_TOPIC_PARTITIONS", "0")

    message = config_error()

    assert "USAGE_WINDOW_SECONDS: " in message
    assert "USAGE_TOPIC_PARTITIONS: " in message


def test_override_by_field_name_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("USAGE_WINDOW_SECONDS", "300")

    assert load_settings(window_seconds=120).window_seconds == 120


def test_none_override_keeps_the_environment(monkeypatch):
    monkeypatch.setenv("USAGE_WINDOW_SECONDS", "300")

    assert load_settings(window_seconds=None).window_seconds == 300


def test_bad_override_is_named_by_its_variable():
    message = config_error(window_seconds=0)

    assert "USAGE_WINDOW_SECONDS: " in message
    assert "window_seconds:" not in message


def test_settings_are_frozen():
    settings = load_settings()

    with pytest.raises(ValidationError, match="frozen"):
        settings.window_seconds = 5  # type: ignore[misc]


def test_nothing_is_read_at_import_time(monkeypatch):
    monkeypatch.setenv("USAGE_WINDOW_SECONDS", "45")

    assert PipelineSettings().window_seconds == 45
