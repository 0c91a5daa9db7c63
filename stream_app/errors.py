"""The stream app's exceptions: one root, each carrying what a person needs to act."""


class PipelineError(Exception):
    """Root of every error the stream app and its CLI raise on purpose."""


class ConfigurationError(PipelineError):
    """A setting is missing or wrong; the message names the setting and the fix."""


class BrokerError(PipelineError):
    """The local Kafka broker could not be set up, started or stopped."""


class SinkError(PipelineError):
    """ClickHouse could not be reached or refused a statement."""


class ClickHouseServerError(PipelineError):
    """The local ClickHouse server could not be started, found or stopped."""
