"""Who an LLM call is for: project, agent, session and free-form context, over contextvars.

`usage_context(...)` sets these for the code inside it, and every event tracked there
carries them. contextvars make it follow `await` and asyncio tasks on its own; a thread
you hand work to needs the context carried over (`bind_usage_context`, or
`asyncio.to_thread`, which copies it).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

from schemas.event import MAX_HANDOFF_CHAIN

P = ParamSpec("P")
R = TypeVar("R")

_EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class UsageContext:
    """The attribution in force: what events tracked right now are billed to.

    Immutable: nesting makes a new one, so a context captured by a thread or a task can
    never change under it.
    """

    project_id: str | None = None
    agent_name: str | None = None
    session_id: str | None = None
    operation: str | None = None
    handoff_chain: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY_MAPPING)

    def nested(
        self,
        *,
        project_id: str | None = None,
        agent_name: str | None = None,
        session_id: str | None = None,
        operation: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> UsageContext:
        """This context with the given fields overridden; a new agent joins the hand-off chain."""
        return replace(
            self,
            project_id=project_id if project_id is not None else self.project_id,
            agent_name=agent_name if agent_name is not None else self.agent_name,
            session_id=session_id if session_id is not None else self.session_id,
            operation=operation if operation is not None else self.operation,
            handoff_chain=extend_handoff_chain(self.handoff_chain, agent_name),
            extra=MappingProxyType({**self.extra, **extra}) if extra else self.extra,
        )


EMPTY_CONTEXT = UsageContext()
_CURRENT: contextvars.ContextVar[UsageContext] = contextvars.ContextVar("usage_context", default=EMPTY_CONTEXT)


def extend_handoff_chain(chain: tuple[str, ...], agent_name: str | None) -> tuple[str, ...]:
    """The chain after `agent_name` takes over: appended last, unless it already is last.

    An agent re-entering its own context is not a hand-off. The chain is capped at the
    schema's limit by dropping the oldest agents, so the current one is always last.
    """
    if not agent_name or (chain and chain[-1] == agent_name):
        return chain
    extended = (*chain, agent_name)
    return extended[-MAX_HANDOFF_CHAIN:]


@contextlib.contextmanager
def usage_context(
    *,
    project_id: str | None = None,
    agent_name: str | None = None,
    session_id: str | None = None,
    operation: str | None = None,
    **context: Any,
) -> Iterator[UsageContext]:
    """Attribute every LLM call inside the block to this project, agent and session.

    Nests: inner values override outer ones, extra keyword arguments are merged into the
    events' `context` object, and an inner `agent_name` extends the hand-off chain (the
    current agent last). Works in sync and async code alike; the previous context is
    restored when the block ends, also on error. Never put prompt or completion text in
    `context`: it is stored with every event.
    """
    new = _CURRENT.get().nested(
        project_id=project_id,
        agent_name=agent_name,
        session_id=session_id,
        operation=operation,
        extra=context,
    )
    token = _CURRENT.set(new)
    try:
        yield new
    finally:
        _CURRENT.reset(token)


def current_usage_context() -> UsageContext:
    """The attribution in force for the calling code (empty outside any `usage_context`)."""
    return _CURRENT.get()


def bind_usage_context(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, made to run in the caller's current contexts wherever it is called.

    For work handed to threads that do not copy contextvars themselves, e.g.
    `executor.submit(bind_usage_context(work), item)`. Each call runs in a fresh copy of
    the captured context, so one bound function can run in several threads at once.
    """
    captured = contextvars.copy_context()

    @functools.wraps(function)
    def run_in_captured_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(function, *args, **kwargs)

    return run_in_captured_context
