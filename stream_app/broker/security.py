"""The Faust worker's Kafka security, derived from the same translation every other client uses.

aiokafka clients take `producers.kafka_security.kafka_client_kwargs(security)` directly;
Faust wants a credentials object instead, so it is built here from those same kwargs: one
translation of the settings, two shapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from producers.kafka_security import kafka_client_kwargs

if TYPE_CHECKING:
    import faust

    from producers.kafka_security import KafkaSecurity
    from stream_app.settings import PipelineSettings


def faust_broker_credentials(security: KafkaSecurity | None) -> Any:
    """`faust.SASLCredentials` / `faust.SSLCredentials` for these settings, or None for PLAINTEXT.

    Faust turns SASL credentials carrying an `ssl_context` into SASL_SSL, and without one
    into SASL_PLAINTEXT, which is exactly the configured protocol.
    """
    import faust

    kwargs = kafka_client_kwargs(security)
    protocol = kwargs["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(kwargs["ssl_context"])
    return faust.SASLCredentials(
        username=kwargs["sasl_plain_username"],
        password=kwargs["sasl_plain_password"],
        ssl_context=kwargs.get("ssl_context"),
        mechanism=kwargs["sasl_mechanism"],
    )


def apply_kafka_settings(app: faust.App, settings: PipelineSettings) -> None:
    """Give a Faust app the configured Kafka security and topic replication factor.

    Called before the worker starts: Faust builds its producer, consumer and topic
    creation clients from `app.conf` lazily, at start.
    """
    credentials = faust_broker_credentials(settings.kafka_security)
    if credentials is not None:
        app.conf.broker_credentials = credentials
    # Faust's own topics (leader election, changelogs) get the same replication as ours.
    app.conf.topic_replication_factor = settings.topic_replication_factor
