"""Global usage tracking (seeds 003/004): configure once at start-up, track everywhere.

    configure_usage_tracking(source="support-api", project_id="acme")   # Kafka from the env
    configure_usage_tracking(lambda event: print(event), destination=None)  # handler only

Every tracked LLM call becomes a `UsageTrackingEvent`; it is handed to the in-process
listeners (`UsageResponse`, `BatchStats`), then to the `on_usage` handler, then to the
transport (Kafka by default). None of these can raise into the caller: a failing handler's
error goes to `on_error(error, event)`, or to the log.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from producers.call import UNATTRIBUTED, CallRecord, TrackingDefaults, draft_event
from producers.collectors import listeners_in_force, notify_listeners
from producers.errors import TrackingConfigError
from producers.settings import (
    KILL_SWITCH,
    TrackingSettings,
    default_source,
    default_spool_dir,
    read_tracking_settings,
)
from producers.transport import (
    DEFAULT_CLOSE_TIMEOUT_SECONDS,
    KafkaTransport,
    NullTransport,
    Transport,
    TransportStats,
)
from producers.wire import EventDraft, materialize
from schemas import UsageTrackingEvent

log = logging.getLogger("producers.tracking")

UsageHandler = Callable[[UsageTrackingEvent], Any]
ErrorHandler = Callable[[BaseException, "UsageTrackingEvent | None"], Any]


@dataclass(frozen=True, slots=True)
class UsageTrackingConfig:
    """The handlers of usage tracking (seed 003's `{ onUsage, onError }`).

    `on_usage(event)` runs on the caller's thread for every tracked call; keep it fast.
    It may be `async`: it is then scheduled on the running event loop (or run to
    completion when there is none). `on_error(error, event)` receives whatever the
    handler raised; without it, errors are logged.
    """

    on_usage: UsageHandler | None = None
    on_error: ErrorHandler | None = None


class _OpenCall(Protocol):
    def abandon_at_exit(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Tracking:
    config: UsageTrackingConfig
    defaults: TrackingDefaults
    transport: Transport
    # Set for our own transports, which take drafts: the event is then encoded (and
    # checked against the model) by the background sender, not on the caller's thread.
    emit_draft: Callable[[EventDraft], None] | None = None


_lock = threading.Lock()
_active: _Tracking | None = None
_warned: set[str] = set()
_pending_handler_tasks: set[asyncio.Task[Any]] = set()
_open_calls: weakref.WeakSet[Any] = weakref.WeakSet()


def configure_usage_tracking(
    handler: UsageHandler | UsageTrackingConfig | None = None,
    *,
    on_usage: UsageHandler | None = None,
    on_error: ErrorHandler | None = None,
    destination: Literal["kafka"] | Transport | None = "kafka",
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    source: str | None = None,
    project_id: str | None = None,
    agent_name: str | None = None,
    spool_dir: str | Path | None = None,
    spool_max_bytes: int | None = None,
    queue_max_events: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> UsageTrackingConfig:
    """Turn usage tracking on for the whole process (replacing any earlier configuration).

    `handler` is an `on_usage` function or a `UsageTrackingConfig`. `destination` is
    where events are published: "kafka" (the default; `bootstrap_servers` and `topic`
    default to KAFKA_BOOTSTRAP_SERVERS and USAGE_EVENTS_TOPIC), a transport object of
    your own, or None to only call the handler. `source`, `project_id` and `agent_name`
    are the defaults for calls made outside any `usage_context`. The kill switch
    USAGE_TRACKING_DISABLED=1 turns publishing off whatever `destination` says; handlers,
    `UsageResponse` and `BatchStats` keep working. Raises `TrackingConfigError` for
    settings that cannot work (e.g. Kafka with no bootstrap servers), so a
    misconfiguration shows at start-up, never during a call.
    """
    config = _handlers(handler, on_usage, on_error)
    settings = read_tracking_settings(environ)
    defaults = TrackingDefaults(
        source=source or settings.source or default_source(),
        project_id=project_id or settings.project_id,
        agent_name=agent_name,
    )
    transport = _transport(
        destination, settings, bootstrap_servers, topic, spool_dir, spool_max_bytes, queue_max_events
    )
    global _active
    with _lock:
        previous, _active = _active, _Tracking(config, defaults, transport, _draft_emitter(transport))
        _warned.clear()
    if previous is not None and previous.transport is not transport:
        previous.transport.close()
    return config


def reset_usage_tracking(timeout: float = DEFAULT_CLOSE_TIMEOUT_SECONDS) -> None:
    """Turn tracking off: flush and close the transport (waiting at most `timeout` s).

    Calls tracked afterwards still reach `UsageResponse`/`BatchStats`, nothing else.
    """
    global _active
    with _lock:
        previous, _active = _active, None
    if previous is not None:
        previous.transport.close(timeout)


def emit(event: UsageTrackingEvent | Mapping[str, Any]) -> None:
    """Publish a ready-made event (or its wire dict, validated here) like a tracked call's.

    Returns at once: the event is queued for the background sender. A dict that is not
    a valid event raises pydantic's `ValidationError` — the one error `emit` raises,
    since it is the caller's bug, not an outage.
    """
    if not isinstance(event, UsageTrackingEvent):
        event = UsageTrackingEvent.model_validate(event)
    _dispatch(event)


def report_call(record: CallRecord) -> None:
    """Hand on the event of a finished call; never raises.

    Used by the instrumentation and `track_llm_call`. The caller's thread only drafts
    the event; a `UsageTrackingEvent` is built here only for whoever needs one now
    (listeners, the `on_usage` handler, a transport of the caller's own). A failure is
    reported to `on_error` or the log.
    """
    tracking = _active
    defaults = tracking.defaults if tracking is not None else TrackingDefaults(source=default_source())
    try:
        draft = draft_event(record, defaults)
    except Exception as exc:  # noqa: BLE001 - a bug of ours must not break the caller's call
        _report_error(tracking, exc, None, "building the usage event failed")
        return
    event = None
    if listeners_in_force() or (
        tracking is not None and (tracking.config.on_usage is not None or tracking.emit_draft is None)
    ):
        try:
            event = materialize(draft)
        except Exception as exc:  # noqa: BLE001 - as above; the draft is still published below
            _report_error(tracking, exc, None, "building the usage event failed")
    if event is not None:
        _dispatch(event)
    elif tracking is None:
        _warn_unconfigured()
    elif tracking.emit_draft is not None:
        _publish_draft(tracking, draft)


def _publish_draft(tracking: _Tracking, draft: EventDraft) -> None:
    if draft.project_id == UNATTRIBUTED:
        _warn_unattributed()
    try:
        tracking.emit_draft(draft)  # type: ignore[misc] - checked by the caller
    except Exception as exc:  # noqa: BLE001 - publishing must never break the caller's call
        _report_error(tracking, exc, None, "publishing the usage event failed")


def flush_usage_tracking(timeout: float = 10.0) -> bool:
    """Wait until every event so far is delivered to Kafka or in the spool; False on timeout."""
    tracking = _active
    return True if tracking is None else tracking.transport.flush(timeout)


def usage_tracking_stats() -> TransportStats:
    """Counters of the active transport: delivered, spooled, replayed, dropped, queued."""
    tracking = _active
    return NullTransport().stats() if tracking is None else tracking.transport.stats()


def track_open_call(call: _OpenCall) -> None:
    """Remember a call still in progress (a stream), to report it if the process exits first."""
    _open_calls.add(call)


def forget_open_call(call: _OpenCall) -> None:
    """The call was reported."""
    _open_calls.discard(call)


def _dispatch(event: UsageTrackingEvent) -> None:
    notify_listeners(event)
    tracking = _active
    if tracking is None:
        _warn_unconfigured()
        return
    if event.project_id == UNATTRIBUTED:
        _warn_unattributed()
    _call_handler(tracking, event)
    try:
        tracking.transport.emit(event)
    except Exception as exc:  # noqa: BLE001 - a transport of the caller's own could raise
        _report_error(tracking, exc, event, "publishing the usage event failed")


def _warn_unconfigured() -> None:
    _warn_once(
        "unconfigured",
        "an LLM call was tracked but usage tracking is not configured, so its event is not "
        "published: call producers.configure_usage_tracking() at start-up",
    )


def _warn_unattributed() -> None:
    _warn_once(
        "unattributed",
        "usage events have no project_id: they are billed to %r. Pass project_id to "
        "configure_usage_tracking() or usage_context()",
        UNATTRIBUTED,
    )


def _draft_emitter(transport: Transport) -> Callable[[EventDraft], None] | None:
    return transport.emit if getattr(transport, "accepts_drafts", False) else None  # type: ignore[return-value]


def _call_handler(tracking: _Tracking, event: UsageTrackingEvent) -> None:
    handler = tracking.config.on_usage
    if handler is None:
        return
    try:
        outcome = handler(event)
        if inspect.isawaitable(outcome):
            _run_async_handler(tracking, outcome, event)
    except Exception as exc:  # noqa: BLE001 - seed 004: a failing handler never breaks the call
        _report_error(tracking, exc, event, "the on_usage handler failed")


def _run_async_handler(tracking: _Tracking, awaitable: Any, event: UsageTrackingEvent) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_awaited(awaitable))
        return
    task = loop.create_task(_awaited(awaitable))
    # Tasks are only weakly held by the loop: keep it until done, then route its error.
    _pending_handler_tasks.add(task)
    task.add_done_callback(lambda done: _async_handler_done(tracking, done, event))


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _async_handler_done(tracking: _Tracking, task: asyncio.Task[Any], event: UsageTrackingEvent) -> None:
    _pending_handler_tasks.discard(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        _report_error(tracking, error, event, "the async on_usage handler failed")


def _report_error(
    tracking: _Tracking | None, error: BaseException, event: UsageTrackingEvent | None, what: str
) -> None:
    on_error = tracking.config.on_error if tracking is not None else None
    if on_error is not None:
        try:
            on_error(error, event)
            return
        except Exception:  # noqa: BLE001 - the error handler's own failure goes to the log
            log.exception("the on_error handler failed while handling: %s", what)
    log.error("%s (event %s): %r", what, event.event_id if event else "-", error, exc_info=error)


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def _handlers(
    handler: UsageHandler | UsageTrackingConfig | None,
    on_usage: UsageHandler | None,
    on_error: ErrorHandler | None,
) -> UsageTrackingConfig:
    if isinstance(handler, UsageTrackingConfig):
        if on_usage is not None or on_error is not None:
            raise TrackingConfigError("pass either a UsageTrackingConfig or on_usage/on_error, not both")
        return handler
    if handler is not None and not callable(handler):
        raise TrackingConfigError(f"handler must be a function or a UsageTrackingConfig, not {type(handler).__name__}")
    if handler is not None and on_usage is not None:
        raise TrackingConfigError("pass the usage handler once: positionally or as on_usage")
    return UsageTrackingConfig(on_usage=handler or on_usage, on_error=on_error)


def _transport(
    destination: Literal["kafka"] | Transport | None,
    settings: TrackingSettings,
    bootstrap_servers: str | None,
    topic: str | None,
    spool_dir: str | Path | None,
    spool_max_bytes: int | None,
    queue_max_events: int | None,
) -> Transport:
    if settings.disabled:
        log.warning("usage events are not published: %s is set (handlers still run)", KILL_SWITCH)
        return NullTransport(disabled_by_kill_switch=True)
    if destination is None:
        return NullTransport()
    if destination != "kafka":
        if not all(callable(getattr(destination, name, None)) for name in ("emit", "flush", "close", "stats")):
            raise TrackingConfigError("destination must be 'kafka', None, or an object with emit/flush/close/stats")
        return destination  # type: ignore[return-value]
    return _kafka_transport(settings, bootstrap_servers, topic, spool_dir, spool_max_bytes, queue_max_events)


def _kafka_transport(
    settings: TrackingSettings,
    bootstrap_servers: str | None,
    topic: str | None,
    spool_dir: str | Path | None,
    spool_max_bytes: int | None,
    queue_max_events: int | None,
) -> KafkaTransport:
    from producers.spool import EventSpool

    bootstrap = bootstrap_servers or settings.bootstrap_servers
    if not bootstrap:
        raise TrackingConfigError(
            "usage events go to Kafka but no broker is configured: set KAFKA_BOOTSTRAP_SERVERS, "
            "pass bootstrap_servers=..., or pass destination=None to only call your handler"
        )
    chosen_topic = topic or settings.topic
    directory = Path(spool_dir) if spool_dir is not None else settings.spool_dir
    spool = EventSpool(
        directory or default_spool_dir(bootstrap, chosen_topic),
        max_bytes=spool_max_bytes or settings.spool_max_bytes,
    )
    return KafkaTransport(
        bootstrap,
        chosen_topic,
        spool,
        queue_max_events=queue_max_events or settings.queue_max_events,
        security=settings.kafka_security,
    )


def _at_exit() -> None:
    # Streams still open at exit are reported (as aborted) before the transport closes.
    for call in list(_open_calls):
        try:
            call.abandon_at_exit()
        except Exception:  # noqa: BLE001 - exiting: report what can be reported
            log.exception("reporting an unfinished LLM call at exit failed")
    tracking = _active
    if tracking is not None:
        tracking.transport.close()


atexit.register(_at_exit)
