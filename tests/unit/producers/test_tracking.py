"""Global configuration (seeds 003/004): handlers, on_error, kill switch, destinations."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from producers import (
    UsageTrackingConfig,
    configure_usage_tracking,
    emit,
    reset_usage_tracking,
    track_llm_call,
    usage_tracking_stats,
)
from producers.errors import TrackingConfigError
from producers.transport import KafkaTransport, NullTransport
from schemas import UsageTrackingEvent
from tests.factories import make_event, make_event_dict

CLOSED_PORT = "127.0.0.1:9"


def tracked_call() -> None:
    with track_llm_call("op", provider="openai", model="gpt-4o") as call:
        call.set_usage(input_tokens=10, output_tokens=2)


def test_a_bare_function_is_the_usage_handler() -> None:
    seen: list[UsageTrackingEvent] = []
    configure_usage_tracking(seen.append, destination=None, project_id="acme", source="svc")

    tracked_call()

    assert [(e.project_id, e.source, e.usage.input_tokens) for e in seen] == [("acme", "svc", 10)]


def test_a_config_object_carries_both_handlers() -> None:
    seen: list[UsageTrackingEvent] = []
    configure_usage_tracking(UsageTrackingConfig(on_usage=seen.append), destination=None)

    tracked_call()

    assert len(seen) == 1


def test_a_failing_handler_never_raises_and_on_error_gets_the_error_and_the_event() -> None:
    errors: list[tuple[BaseException, UsageTrackingEvent | None]] = []

    def broken(event: UsageTrackingEvent) -> None:
        raise RuntimeError("handler bug")

    configure_usage_tracking(on_usage=broken, on_error=lambda error, event: errors.append((error, event)),
                             destination=None)
    tracked_call()

    (error, event), = errors
    assert isinstance(error, RuntimeError) and event is not None and event.usage.input_tokens == 10


def test_a_failing_handler_without_on_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    configure_usage_tracking(lambda event: 1 / 0, destination=None)

    with caplog.at_level(logging.ERROR, logger="producers.tracking"):
        tracked_call()

    assert "the on_usage handler failed" in caplog.text


def test_a_failing_on_error_is_logged_too(caplog: pytest.LogCaptureFixture) -> None:
    configure_usage_tracking(lambda event: 1 / 0, on_error=lambda error, event: 1 / 0, destination=None)

    with caplog.at_level(logging.ERROR):
        tracked_call()

    assert "the on_error handler failed" in caplog.text


def test_async_handlers_run_on_the_running_loop_and_their_errors_reach_on_error() -> None:
    seen: list[str] = []
    errors: list[BaseException] = []

    async def handler(event: UsageTrackingEvent) -> None:
        await asyncio.sleep(0)
        seen.append(event.event_id)
        raise ValueError("async handler bug")

    configure_usage_tracking(handler, on_error=lambda error, event: errors.append(error), destination=None)

    async def main() -> None:
        tracked_call()
        await asyncio.sleep(0.05)

    asyncio.run(main())
    tracked_call()  # no running loop: run to completion

    assert len(seen) == 2 and [type(error) for error in errors] == [ValueError, ValueError]


def test_kill_switch_disables_publishing_but_handlers_still_see_usage() -> None:
    seen: list[UsageTrackingEvent] = []
    configure_usage_tracking(seen.append, bootstrap_servers=CLOSED_PORT,
                             environ={"USAGE_TRACKING_DISABLED": "1"})

    tracked_call()

    assert isinstance(_active_transport(), NullTransport)
    assert usage_tracking_stats().publishing_disabled
    assert len(seen) == 1


def test_kafka_without_bootstrap_servers_is_refused_at_configuration() -> None:
    with pytest.raises(TrackingConfigError, match="KAFKA_BOOTSTRAP_SERVERS"):
        configure_usage_tracking(environ={})


def test_a_misspelled_kill_switch_value_is_refused() -> None:
    with pytest.raises(TrackingConfigError, match="USAGE_TRACKING_DISABLED"):
        configure_usage_tracking(destination=None, environ={"USAGE_TRACKING_DISABLED": "maybe"})


def test_kafka_destination_builds_a_spooling_transport_from_the_environment(tmp_path: Path) -> None:
    configure_usage_tracking(environ={
        "KAFKA_BOOTSTRAP_SERVERS": CLOSED_PORT, "USAGE_EVENTS_TOPIC": "t.events",
        "USAGE_TRACKING_SPOOL_DIR": str(tmp_path), "USAGE_TRACKING_SPOOL_MAX_BYTES": "1000000",
    })

    transport = _active_transport()

    assert isinstance(transport, KafkaTransport)
    assert (transport.bootstrap_servers, transport.topic) == (CLOSED_PORT, "t.events")
    assert (transport.spool.directory, transport.spool.max_bytes) == (tmp_path, 1_000_000)


def test_emit_validates_dicts_and_publishes_ready_events() -> None:
    seen: list[UsageTrackingEvent] = []
    configure_usage_tracking(seen.append, destination=None)

    emit(make_event())
    emit(make_event_dict())
    with pytest.raises(ValueError):
        emit(make_event_dict(usage={"input_tokens": -1}))

    assert len(seen) == 2


def test_after_reset_nothing_is_handled() -> None:
    seen: list[UsageTrackingEvent] = []
    configure_usage_tracking(seen.append, destination=None)
    reset_usage_tracking()

    tracked_call()

    assert seen == []


def test_conflicting_handler_arguments_are_refused() -> None:
    with pytest.raises(TrackingConfigError):
        configure_usage_tracking(lambda e: None, on_usage=lambda e: None, destination=None)
    with pytest.raises(TrackingConfigError):
        configure_usage_tracking("not callable", destination=None)  # type: ignore[arg-type]


def _active_transport():
    from producers import tracking

    assert tracking._active is not None
    return tracking._active.transport


