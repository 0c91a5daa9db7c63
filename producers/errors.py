"""The producers' exceptions: one root, each carrying what a caller needs to act.

Kept apart from `stream_app.errors` on purpose: services embed `producers` without the
stream app installed.
"""

from __future__ import annotations


class ProducerError(Exception):
    """Root of every error the `producers` package raises on purpose."""


class EventTooLargeError(ProducerError):
    """One event's JSON alone does not fit in a Kafka message, so it cannot be sent.

    Raised before anything is sent, so the caller can drop the event and retry the rest.
    """

    def __init__(self, event_id: str, size_bytes: int, max_bytes: int) -> None:
        self.event_id = event_id
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes
        super().__init__(
            f"event {event_id!r} is {size_bytes} bytes as a JSON batch of one; "
            f"a message holds at most {max_bytes} bytes (shrink its context, "
            "provider_metadata or tool_calls)"
        )


class MissingDependencyError(ProducerError):
    """An optional dependency is not installed; the message says what to install."""


class PublisherStateError(ProducerError):
    """The publisher was used before `start()` or after `stop()`."""


class BrokerUnavailableError(ProducerError):
    """The Kafka bootstrap servers could not be reached."""

    def __init__(self, bootstrap_servers: str, reason: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        super().__init__(
            f"cannot reach Kafka at {bootstrap_servers}: {reason} "
            "(check KAFKA_BOOTSTRAP_SERVERS, or start a broker with `usage-pipeline kafka up`)"
        )


class PublishError(ProducerError):
    """Some messages were not acknowledged by the broker.

    Re-publishing the same events is safe: consumers bill each `event_id` once (SPEC §3).
    """

    def __init__(self, topic: str, failed_messages: int, total_messages: int, reason: str) -> None:
        self.topic = topic
        self.failed_messages = failed_messages
        self.total_messages = total_messages
        super().__init__(
            f"{failed_messages} of {total_messages} messages to {topic!r} were not delivered: "
            f"{reason}; re-publishing the same events is safe (they are deduplicated by event_id)"
        )


class TrackingConfigError(ProducerError):
    """`configure_usage_tracking` was given settings it cannot work with.

    Raised at configuration time (service start-up), never from a tracked LLM call.
    """


class SpoolError(ProducerError):
    """The local spool directory cannot be used (not writable, not a directory)."""
