"""Every setting of the stream app and the CLI, read in one place and passed down.

Nothing else in the package reads the environment. Each field names its environment
variable; README.md lists them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_app.errors import ConfigurationError

if TYPE_CHECKING:
    from producers.kafka_security import KafkaSecurity

DEFAULT_CONTEXT_DENY_KEYS = "prompt,messages,content,completion"
# 32 random characters or more: a shorter admin token is guessable by someone who can retry.
MIN_ADMIN_TOKEN_LENGTH = 32

def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class PipelineSettings(BaseSettings):
    """Settings from the environment (and CLI flags, which override them)."""

    # hide_input_in_errors: a ValidationError must not echo a password it was given.
    model_config = SettingsConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

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
    clickhouse_url: SecretStr | None = Field(
        None,
        validation_alias=_env("CLICKHOUSE_URL"),
        description="chdb:///abs/dir (embedded, default <home>/clickhouse) or http(s)://user:pass@host:8123/db. "
        "Secret: it may hold a password.",
    )
    clickhouse_ca_file: Path | None = Field(
        None,
        validation_alias=_env("CLICKHOUSE_CA_FILE"),
        description="PEM CA that signed an https:// ClickHouse server's certificate (default: the system's CAs).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=_env("KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validation_alias=_env("KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(None, validation_alias=_env("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias=_env("KAFKA_SASL_PASSWORD"))
    kafka_ssl_cafile: Path | None = Field(None, validation_alias=_env("KAFKA_SSL_CAFILE"))
    kafka_ssl_certfile: Path | None = Field(None, validation_alias=_env("KAFKA_SSL_CERTFILE"))
    kafka_ssl_keyfile: Path | None = Field(None, validation_alias=_env("KAFKA_SSL_KEYFILE"))
    topic_replication_factor: int = Field(
        1,
        ge=1,
        le=32,
        validation_alias=_env("USAGE_TOPIC_REPLICATION_FACTOR"),
        description="Replicas of the topics the pipeline creates; 3 on a production cluster.",
    )
    admin_token: SecretStr | None = Field(
        None,
        validation_alias=_env("USAGE_ADMIN_TOKEN"),
        description="Bearer token for the worker's and dashboard's pages other than /health and /metrics. "
        "Required to listen beyond loopback.",
    )
    ingest_keys_file: Path | None = Field(
        None,
        validation_alias=_env("USAGE_INGEST_KEYS_FILE"),
        description="Hashes of the ingest API keys (`usage-pipeline keys`). Default <home>/ingest-keys.json.",
    )
    context_deny_keys: str = Field(
        DEFAULT_CONTEXT_DENY_KEYS,
        validation_alias=_env("USAGE_CONTEXT_DENY_KEYS"),
        description="Comma-separated `context` keys whose events are dead-lettered (prompt_text_in_context); "
        "empty: none.",
    )
    rejections_ttl_days: int = Field(
        30,
        ge=1,
        le=3650,
        validation_alias=_env("USAGE_REJECTIONS_TTL_DAYS"),
        description="Days rejected raw messages are kept in ClickHouse before they expire.",
    )
    events_topic: str = Field("llm.usage.events", validation_alias=_env("USAGE_EVENTS_TOPIC"))
    dlq_topic: str = Field("llm.usage.events.dlq", validation_alias=_env("USAGE_DLQ_TOPIC"))
    topic_partitions: int = Field(4, ge=1, le=1024, validation_alias=_env("USAGE_TOPIC_PARTITIONS"))
    consumer_group: str = Field("usage-pipeline", min_length=1, validation_alias=_env("USAGE_CONSUMER_GROUP"))
    window_seconds: int = Field(60, ge=1, le=86_400, validation_alias=_env("USAGE_WINDOW_SECONDS"))
    chunk_max_messages: int = Field(50, ge=1, le=100_000, validation_alias=_env("USAGE_CHUNK_MAX_MESSAGES"))
    chunk_max_bytes: int = Field(
        16 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        validation_alias=_env("USAGE_CHUNK_MAX_BYTES"),
        description="Bytes of Kafka messages per chunk (a larger message is a chunk of its own); "
        "also sizes what the consumer prefetches, so it bounds the worker's memory.",
    )
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
    def _known_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in {"chdb", "http", "https"}:
            # Never the URL itself: it may carry a password.
            raise ValueError(
                f"the scheme is {scheme[:10]!r}; use chdb:///absolute/dir or http(s)://user:pass@host:8123/database"
            )
        return value

    @field_validator("window_seconds")
    @classmethod
    def _window_divides_a_day(cls, value: int) -> int:
        """Windows tile UTC days exactly: hour and day totals are whole windows (README, How the store works)."""
        if 86_400 % value:
            raise ValueError(f"{value} s does not divide a day; use e.g. 60, 300, 900 or 3600")
        return value

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_case_names(cls, value: object, info: ValidationInfo) -> object:
        """`sasl_ssl` works like `SASL_SSL`; empty means the default, as for every other setting."""
        if not isinstance(value, str):
            return value
        cleaned = value.strip().upper()
        if cleaned:
            return cleaned
        return "PLAINTEXT" if info.field_name == "kafka_security_protocol" else None

    @field_validator("admin_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if len(value.get_secret_value()) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(
                f"shorter than {MIN_ADMIN_TOKEN_LENGTH} characters; make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator(
        "price_overrides_file", "clickhouse_ca_file", "kafka_sasl_username",
        "kafka_sasl_password", "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", "ingest_keys_file",
        mode="before",
    )
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _home_absolute(self) -> PipelineSettings:
        object.__setattr__(self, "home", self.home.expanduser().resolve())
        for name in ("price_overrides_file", "clickhouse_ca_file", "ingest_keys_file"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, value.expanduser().resolve())
        if self.clickhouse_ca_file is not None and not self.clickhouse_ca_file.is_file():
            raise ValueError(f"CLICKHOUSE_CA_FILE={self.clickhouse_ca_file}: no such file")
        self.kafka_security  # noqa: B018 - fails here, at start-up, naming the setting
        return self

    @property
    def kafka_security(self) -> KafkaSecurity:
        """The Kafka protocol, SASL user and TLS files every Kafka client of the pipeline uses."""
        from producers.kafka_security import KafkaSecurity, KafkaSecurityError

        try:
            return KafkaSecurity(
                protocol=self.kafka_security_protocol,
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_username=self.kafka_sasl_username,
                sasl_password=self.kafka_sasl_password,
                ssl_cafile=self.kafka_ssl_cafile,
                ssl_certfile=self.kafka_ssl_certfile,
                ssl_keyfile=self.kafka_ssl_keyfile,
            )
        except KafkaSecurityError as exc:
            raise ValueError(str(exc)) from None

    @property
    def context_deny_key_set(self) -> frozenset[str]:
        """The `context` keys that mark an event as carrying prompt text."""
        return frozenset(key.strip() for key in self.context_deny_keys.split(",") if key.strip())

    @property
    def resolved_ingest_keys_file(self) -> Path:
        return self.ingest_keys_file or self.home / "ingest-keys.json"

    @property
    def resolved_clickhouse_url(self) -> str:
        """The ClickHouse location, defaulting to the embedded store under `home`."""
        if self.clickhouse_url is not None:
            return self.clickhouse_url.get_secret_value()
        return f"chdb://{self.home / 'clickhouse'}"

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
            field = str(err["loc"][0]) if err["loc"] else None
            # A model-level check names its variables in its own message.
            prefix = f"{_env_name(field)}: " if field else ""
            problems.append(f"{prefix}{err['msg'].removeprefix('Value error, ')}")
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
