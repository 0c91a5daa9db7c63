"""The tracking SDK works in a service that has neither the stream app's deps nor any provider SDK."""

from __future__ import annotations

from tests.unit.test_light_imports import run_blocked


def test_tracking_works_without_heavy_deps_provider_sdks_or_kafka_client() -> None:
    result = run_blocked(
        """
        import sys
        class BlockMore(type(sys.meta_path[0])):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("openai", "anthropic", "aiokafka"):
                    raise ImportError(f"blocked heavy import: {name}")
                return None
        sys.meta_path.insert(0, BlockMore())

        from producers import (BatchStats, configure_usage_tracking, track_llm_call, usage_context,
                               with_usage, instrument_openai, instrument_anthropic)
        import producers.transport, producers.spool, producers.instrument
        seen = []
        configure_usage_tracking(seen.append, destination=None, project_id="p")
        def call():
            with usage_context(agent_name="a"), track_llm_call("op", provider="x", model="m") as c:
                c.set_usage(input_tokens=3, output_tokens=1)
        with BatchStats.collect() as stats:
            response = with_usage(call)
        assert response.usage.input_tokens == 3 and stats.request_count == 1 and len(seen) == 1
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
