"""How every Kafka client of the project authenticates and encrypts: one description, one translation.

The SDK, `emit`, ingest, the DLQ commands, topic creation and the Faust worker all build
their clients from `kafka_client_kwargs(security)`, so a protocol or certificate setting
cannot be honoured by one client and forgotten by another. Lives in `producers` because
services embed the SDK without the stream app; `stream_app.settings` builds the same
`KafkaSecurity` from its own (pydantic) settings.

Environment variables (SPEC.md §5), the same for every command, the SDK and ingest:

| variable | values |
|---|---|
| `KAFKA_SECURITY_PROTOCOL` | `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT`, `SASL_SSL` |
| `KAFKA_SASL_MECHANISM` | `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` (required with SASL_*) |
| `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD` | the SASL user (required with SASL_*) |
| `KAFKA_SSL_CAFILE` | PEM CA bundle that signed the brokers' certificates (default: the system's) |
| `KAFKA_SSL_CERTFILE`, `KAFKA_SSL_KEYFILE` | PEM client certificate and key, for brokers that require them |
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from producers.errors import ProducerError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

ENV_PROTOCOL = "KAFKA_SECURITY_PROTOCOL"
ENV_MECHANISM = "KAFKA_SASL_MECHANISM"
ENV_USERNAME = "KAFKA_SASL_USERNAME"
ENV_PASSWORD = "KAFKA_SASL_PASSWORD"
ENV_CAFILE = "KAFKA_SSL_CAFILE"
ENV_CERTFILE = "KAFKA_SSL_CERTFILE"
ENV_KEYFILE = "KAFKA_SSL_KEYFILE"


class KafkaSecurityError(ProducerError):
    """The Kafka security settings cannot work together; the message names the setting."""


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """Protocol, SASL user and TLS files of a Kafka connection. The password never shows in a repr."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    def __post_init__(self) -> None:
        problems = security_problems(self)
        if problems:
            raise KafkaSecurityError("; ".join(problems))

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")


def security_problems(security: KafkaSecurity) -> list[str]:
    """Each reason these settings cannot connect, naming the variable and the fix (empty: fine)."""
    problems: list[str] = []
    if security.protocol not in PROTOCOLS:
        problems.append(f"{ENV_PROTOCOL}={security.protocol!r}: use one of {', '.join(PROTOCOLS)}")
        return problems
    if security.uses_sasl:
        if security.sasl_mechanism not in SASL_MECHANISMS:
            problems.append(
                f"{ENV_MECHANISM}={security.sasl_mechanism!r}: {security.protocol} needs one of {', '.join(SASL_MECHANISMS)}"
            )
        if not security.sasl_username:
            problems.append(f"{ENV_USERNAME} is not set: {security.protocol} needs the SASL user name")
        if security.sasl_password is None or not security.sasl_password.get_secret_value():
            problems.append(f"{ENV_PASSWORD} is not set: {security.protocol} needs the SASL password")
    elif security.sasl_mechanism or security.sasl_username or security.sasl_password:
        problems.append(
            f"SASL settings are given but {ENV_PROTOCOL}={security.protocol}: set it to SASL_SSL "
            "(or SASL_PLAINTEXT), or unset the KAFKA_SASL_* variables"
        )
    tls_files = ((ENV_CAFILE, security.ssl_cafile), (ENV_CERTFILE, security.ssl_certfile), (ENV_KEYFILE, security.ssl_keyfile))
    for name, path in tls_files:
        if path is None:
            continue
        if not security.uses_tls:
            problems.append(f"{name} is set but {ENV_PROTOCOL}={security.protocol} does not use TLS: use SSL or SASL_SSL")
        elif not Path(path).is_file():
            problems.append(f"{name}={path}: no such file")
    if security.ssl_keyfile is not None and security.ssl_certfile is None:
        problems.append(f"{ENV_KEYFILE} is set without {ENV_CERTFILE}: give the client certificate too")
    return problems


def read_kafka_security(environ: Mapping[str, str] | None = None) -> KafkaSecurity:
    """The Kafka security settings in `environ` (default: the process environment)."""
    env = os.environ if environ is None else environ

    def text(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    def path(name: str) -> Path | None:
        value = text(name)
        return Path(value).expanduser() if value else None

    password = env.get(ENV_PASSWORD) or None
    return KafkaSecurity(
        protocol=(text(ENV_PROTOCOL) or "PLAINTEXT").upper(),
        sasl_mechanism=(text(ENV_MECHANISM) or "").upper() or None,
        sasl_username=text(ENV_USERNAME),
        sasl_password=SecretStr(password) if password else None,
        ssl_cafile=path(ENV_CAFILE),
        ssl_certfile=path(ENV_CERTFILE),
        ssl_keyfile=path(ENV_KEYFILE),
    )


def tls_context(security: KafkaSecurity) -> ssl.SSLContext:
    """A client TLS context that verifies the broker's certificate and host name.

    Verification is never switched off: a private CA is trusted through `KAFKA_SSL_CAFILE`
    rather than by skipping the check, which would let anyone on the path read the traffic.
    """
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(security.ssl_cafile) if security.ssl_cafile else None
    )
    if security.ssl_certfile is not None:
        context.load_cert_chain(
            str(security.ssl_certfile), str(security.ssl_keyfile) if security.ssl_keyfile else None
        )
    return context


def kafka_client_kwargs(security: KafkaSecurity | None) -> dict[str, Any]:
    """The keyword arguments that give an aiokafka producer, consumer or admin client this security.

    The one translation of the settings: every Kafka client of the project is built with it.
    """
    if security is None or security.protocol == "PLAINTEXT":
        return {"security_protocol": "PLAINTEXT"}
    kwargs: dict[str, Any] = {"security_protocol": security.protocol}
    if security.uses_tls:
        kwargs["ssl_context"] = tls_context(security)
    if security.uses_sasl:
        assert security.sasl_password is not None  # checked in __post_init__
        kwargs["sasl_mechanism"] = security.sasl_mechanism
        kwargs["sasl_plain_username"] = security.sasl_username
        kwargs["sasl_plain_password"] = security.sasl_password.get_secret_value()
    return kwargs
