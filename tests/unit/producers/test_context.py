"""`usage_context`: nesting, hand-off chains, and following the code across await, tasks and threads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from producers.context import (
    EMPTY_CONTEXT,
    bind_usage_context,
    current_usage_context,
    extend_handoff_chain,
    usage_context,
)
from schemas.event import MAX_HANDOFF_CHAIN


def test_outside_any_context_nothing_is_attributed() -> None:
    assert current_usage_context() == EMPTY_CONTEXT


def test_nested_contexts_override_inner_values_and_merge_extra_context() -> None:
    with usage_context(project_id="acme", session_id="s-1", region="eu", tier="gold"):
        with usage_context(session_id="s-2", tier="silver") as inner:
            assert (inner.project_id, inner.session_id) == ("acme", "s-2")
            assert dict(inner.extra) == {"region": "eu", "tier": "silver"}
        assert current_usage_context().session_id == "s-1"
    assert current_usage_context() == EMPTY_CONTEXT


def test_nested_agents_extend_the_handoff_chain_current_agent_last() -> None:
    with usage_context(agent_name="router"):
        with usage_context(agent_name="triage"):
            with usage_context(agent_name="billing") as innermost:
                assert innermost.agent_name == "billing"
                assert innermost.handoff_chain == ("router", "triage", "billing")
            assert current_usage_context().handoff_chain == ("router", "triage")


def test_reentering_the_same_agent_or_no_agent_is_not_a_handoff() -> None:
    with usage_context(agent_name="triage"):
        with usage_context(agent_name="triage"), usage_context(session_id="s") as inner:
            assert inner.handoff_chain == ("triage",)


def test_the_chain_keeps_the_current_agent_last_when_capped() -> None:
    chain: tuple[str, ...] = ()
    for number in range(MAX_HANDOFF_CHAIN + 5):
        chain = extend_handoff_chain(chain, f"agent-{number}")

    assert len(chain) == MAX_HANDOFF_CHAIN
    assert chain[-1] == f"agent-{MAX_HANDOFF_CHAIN + 4}"


def test_context_is_restored_after_an_exception() -> None:
    try:
        with usage_context(project_id="acme"):
            raise ValueError("boom")
    except ValueError:
        pass
    assert current_usage_context().project_id is None


def test_context_follows_await_and_is_isolated_between_tasks() -> None:
    async def agent(name: str) -> tuple[str | None, tuple[str, ...]]:
        with usage_context(agent_name=name):
            await asyncio.sleep(0.01)
            context = current_usage_context()
            return context.agent_name, context.handoff_chain

    async def main() -> list[tuple[str | None, tuple[str, ...]]]:
        with usage_context(project_id="acme", agent_name="router"):
            return await asyncio.gather(agent("a"), agent("b"))

    assert asyncio.run(main()) == [("a", ("router", "a")), ("b", ("router", "b"))]


def test_asyncio_to_thread_carries_the_context() -> None:
    async def main() -> str | None:
        with usage_context(project_id="acme"):
            return await asyncio.to_thread(lambda: current_usage_context().project_id)

    assert asyncio.run(main()) == "acme"


def test_bound_functions_run_in_the_binding_context_in_any_thread() -> None:
    with usage_context(project_id="acme", agent_name="worker"):
        bound = bind_usage_context(lambda: (current_usage_context().project_id, threading.current_thread().name))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: bound(), range(8)))

    assert {project for project, _ in results} == {"acme"}


def test_a_plain_thread_does_not_inherit_the_context() -> None:
    seen: list[str | None] = []
    with usage_context(project_id="acme"):
        thread = threading.Thread(target=lambda: seen.append(current_usage_context().project_id))
        thread.start()
        thread.join()

    assert seen == [None]
