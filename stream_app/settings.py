"""Every setting of the stream app and the CLI, read in one place and passed down.

Nothing else in the package reads the environment. Each field names its environment
variable; README.md lists them all.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_app.errors import ConfigurationError


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class PipelineSettings(BaseSettings):
    """Settings from the environment (and CLI flags, which override them)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    home: Path = Field(
        Path(".usage-pipeline"),
        validation_alias=_env("USAGE_PIPELINE_HOME"),
        description="Local state: the embedded ClickHouse store, the local Kafka broker, its jars' cache.",
    )
    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="host:port[,host:port]. Unset: the broker started by `usage-pipeline kafka up`.",
    )
    clickhouse_url: str | None = Field(
        None,
        validation_alias=_env("CLICKHOUSE_URL"),
        description="chdb:///abs/dir (embedded, default <home>/clickhouse) or http(s)://user:pass@host:8123/db.",
    )
    events_topic: str = Field("llm.usage.events", validation_alias=_env("USAGE_EVENTS_TOPIC"))
    dlq_topic: str = Field("llm.usage.events.dlq", validation_alias=_env("USAGE_DLQ_TOPIC"))
    topic_partitions: int = Field(4, ge=1, le=1024, validation_alias=_env("USAGE_TOPIC_PARTITIONS"))
    consumer_group: str = Field("usage-pipeline", min_length=1, validation_alias=_env("USAGE_CONSUMER_GROUP"))
    window_seconds: int = Field(60, ge=1, le=86_400, validation_alias=_env("USAGE_WINDOW_SECONDS"))
    chunk_max_messages: int = Field(50, ge=1, le=100_000, validation_alias=_env("USAGE_CHUNK_MAX_MESSAGES"))
    chunk_within_seconds: float = Field(0.5, gt=0, le=60, validation_alias=_env("USAGE_CHUNK_WITHIN_SECONDS"))
    worker_web_port: int = Field(6066, ge=0, le=65_535, validation_alias=_env("USAGE_WORKER_WEB_PORT"))
    worker_web_host: str = Field("127.0.0.1", validation_alias=_env("USAGE_WORKER_WEB_HOST"))
    sink_retry_initial_seconds: float = Field(0.2, gt=0, validation_alias=_env("USAGE_SINK_RETRY_INITIAL_SECONDS"))
    sink_retry_max_seconds: float = Field(10.0, gt=0, validation_alias=_env("USAGE_SINK_RETRY_MAX_SECONDS"))
    sink_fault_plan: str = Field(
        "",
        validation_alias=_env("USAGE_SINK_FAULT_PLAN"),
        description="Fault injection for tests and drills, e.g. 'fail_inserts=3'. Empty in production.",
    )
    max_future_skew_seconds: int = Field(
        300, ge=0, validation_alias=_env("USAGE_MAX_FUTURE_SKEW_SECONDS"),
        description="Events stamped further in the future than this are dead-lettered.",
    )
    log_level: str = Field("info", validation_alias=_env("USAGE_LOG_LEVEL"))
    price_overrides_file: Path | None = Field(
        None,
        validation_alias=_env("USAGE_PRICE_OVERRIDES_FILE"),
        description="TOML price file: negotiated/private prices and model aliases (README, Pricing). Unset: catalog only.",
    )

    @field_validator("clickhouse_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = urlsplit(value).scheme
        if scheme not in {"chdb", "http", "https"}:
            raise ValueError(
                f"CLICKHOUSE_URL={value!r} has scheme {scheme!r}; use chdb:///absolute/dir or "
                "http(s)://user:pass@host:8123/database"
            )
        return value

    @field_validator("price_overrides_file", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _home_absolute(self) -> PipelineSettings:
        object.__setattr__(self, "home", self.home.expanduser().resolve())
        if self.price_overrides_file is not None:
            object.__setattr__(self, "price_overrides_file", self.price_overrides_file.expanduser().resolve())
        return self

    @property
    def resolved_clickhouse_url(self) -> str:
        """The ClickHouse location, defaulting to the embedded store under `home`."""
        return self.clickhouse_url or f"chdb://{self.home / 'clickhouse'}"

    @property
    def kafka_home(self) -> Path:
        return self.home / "kafka"


def load_settings(**overrides: object) -> PipelineSettings:
    """Read the settings, turning validation errors into one message naming each variable."""
    from pydantic import ValidationError

    # Overrides come by field name; the model only takes its environment names.
    clean = {_env_name(k): v for k, v in overrides.items() if v is not None}
    try:
        return PipelineSettings(**clean)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            env_name = _env_name(field)
            problems.append(f"{env_name}: {err['msg']}")
        raise ConfigurationError("invalid settings:\n  " + "\n  ".join(problems)) from None


def _env_name(field: str) -> str:
    info = PipelineSettings.model_fields.get(field)
    if info is None:
        return field
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field


__all__ = ["PipelineSettings", "load_settings", "SecretStr"]
