"""`BatchStats` (seed 002): totals, cached and reasoning tokens, requests, successes and errors per phase."""

from __future__ import annotations

import threading

from producers import BatchStats
from producers.collectors import notify_listeners
from tests.factories import make_event


def call(input_tokens: int, output_tokens: int, cached: int = 0, reasoning: int = 0, error: str | None = None):
    return make_event(
        usage={"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_tokens": cached,
               "cache_write_tokens": 0, "reasoning_tokens": reasoning},
        error=error,
    )


def test_counts_tokens_requests_successes_and_errors() -> None:
    with BatchStats.collect("phase 1") as stats:
        notify_listeners(call(1000, 200, cached=800, reasoning=50))
        notify_listeners(call(500, 100))
        notify_listeners(call(0, 0, error="APIError: overloaded"))

    assert stats.as_dict() == {
        "name": "phase 1", "total_tokens": 1800, "input_tokens": 1500, "output_tokens": 300,
        "cached_tokens": 800, "cache_write_tokens": 0, "reasoning_tokens": 50,
        "request_count": 3, "success_count": 2, "error_count": 1,
    }
    assert str(stats).startswith("phase 1: 3 requests (2 ok, 1 failed), 1800 tokens")


def test_phases_nest_in_their_tick_and_stop_counting_outside() -> None:
    with BatchStats.collect("tick") as tick:
        with BatchStats.collect("phase 1") as phase_1:
            notify_listeners(call(10, 1))
        with BatchStats.collect("phase 2") as phase_2:
            notify_listeners(call(20, 2))
            notify_listeners(call(30, 3))
    notify_listeners(call(99, 9))

    assert (phase_1.request_count, phase_2.request_count, tick.request_count) == (1, 2, 3)
    assert tick.total_tokens == phase_1.total_tokens + phase_2.total_tokens


def test_merge_adds_totals_and_collecting_accumulates() -> None:
    job = BatchStats("job")
    with job.collecting():
        notify_listeners(call(10, 1))
    with job.collecting():
        notify_listeners(call(10, 1))
    other = BatchStats("other")
    with other.collecting():
        notify_listeners(call(5, 5, error="boom"))

    job.merge(other)

    assert (job.request_count, job.error_count, job.total_tokens, job.name) == (3, 1, 32, "job")


def test_threads_sharing_the_stats_lose_no_count() -> None:
    stats = BatchStats()
    event = call(3, 1)

    def hammer() -> None:
        for _ in range(2000):
            stats.add(event)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (stats.request_count, stats.total_tokens) == (8000, 32000)
