"""Kafka security settings: one translation into aiokafka kwargs; errors name the variable, never the password."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from producers.kafka_security import KafkaSecurity, KafkaSecurityError, kafka_client_kwargs, read_kafka_security

PASSWORD = "pw-Zq81-never-printed"


def test_unset_means_plaintext() -> None:
    assert read_kafka_security({}) == KafkaSecurity()
    assert kafka_client_kwargs(None) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_gives_a_verifying_context_and_the_scram_user(tmp_path: Path) -> None:
    ca = _self_signed_ca(tmp_path)
    security = read_kafka_security({
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_MECHANISM": "scram-sha-512",
        "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": PASSWORD, "KAFKA_SSL_CAFILE": str(ca),
    })

    kwargs = kafka_client_kwargs(security)

    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("svc", PASSWORD)
    context = kwargs["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert PASSWORD not in repr(security) and PASSWORD not in str(security)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": PASSWORD},
         "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"},
         "KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SASL_PASSWORD": PASSWORD}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nowhere/ca.pem"}, "KAFKA_SSL_CAFILE"),
        ({"KAFKA_SSL_CAFILE": "/nowhere/ca.pem"}, "KAFKA_SSL_CAFILE"),
    ],
)
def test_unworkable_settings_name_the_variable_and_never_the_password(env: dict[str, str], named: str) -> None:
    with pytest.raises(KafkaSecurityError) as refused:
        read_kafka_security(env)

    assert named in str(refused.value) and PASSWORD not in str(refused.value)


def test_the_pipeline_settings_build_the_same_security(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_app.errors import ConfigurationError
    from stream_app.settings import load_settings

    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    settings = load_settings()

    assert settings.kafka_security == KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", "svc", SecretStr(PASSWORD))
    assert PASSWORD not in repr(settings)

    monkeypatch.delenv("KAFKA_SASL_USERNAME")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert "KAFKA_SASL_USERNAME" in str(refused.value) and PASSWORD not in str(refused.value)


def test_the_faust_credentials_come_from_the_same_kwargs(tmp_path: Path) -> None:
    import faust

    from stream_app.broker.security import faust_broker_credentials

    ca = _self_signed_ca(tmp_path)
    credentials = faust_broker_credentials(
        KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "svc", SecretStr(PASSWORD), ssl_cafile=ca)
    )

    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert PASSWORD not in repr(credentials)
    assert faust_broker_credentials(None) is None


def _self_signed_ca(directory: Path) -> Path:
    from stream_app.broker.tls import ensure_secure_material

    return ensure_secure_material(directory / "tls").ca_file
