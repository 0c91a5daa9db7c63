"""Event ids are UUIDv7 (SPEC §1): time-ordered, and strictly increasing within a process."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from producers import event_ids
from producers.call import CallRecord
from producers.event_ids import event_id_millis, new_event_id
from producers.llm_call import track_llm_call
from schemas import UsageTrackingEvent


def test_ids_are_rfc_9562_version_7_carrying_the_time_they_were_drawn() -> None:
    before = time.time_ns() // 1_000_000
    drawn = new_event_id()
    after = time.time_ns() // 1_000_000

    parsed = uuid.UUID(drawn)
    assert str(parsed) == drawn  # canonical form: lower-case, hyphenated
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= event_id_millis(drawn) <= after


def test_ids_increase_strictly_within_a_process_even_many_per_millisecond() -> None:
    drawn = [new_event_id() for _ in range(20_000)]

    assert len(set(drawn)) == len(drawn)
    assert drawn == sorted(drawn)  # as text, the way the store's keys sort
    assert [uuid.UUID(i).int for i in drawn] == sorted(uuid.UUID(i).int for i in drawn)
    assert len({event_id_millis(i) for i in drawn}) < len(drawn)  # several per millisecond happened


def test_ids_drawn_on_many_threads_are_unique_and_increase_on_each() -> None:
    per_thread: list[list[str]] = [[] for _ in range(4)]

    def draw(into: list[str]) -> None:
        for _ in range(5_000):
            into.append(new_event_id())

    threads = [threading.Thread(target=draw, args=(ids,)) for ids in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(ids == sorted(ids) for ids in per_thread)
    assert len({i for ids in per_thread for i in ids}) == 20_000


def test_a_clock_stepping_back_never_makes_an_id_go_back(monkeypatch: pytest.MonkeyPatch) -> None:
    first = new_event_id()
    real_time_ns = time.time_ns
    monkeypatch.setattr(event_ids.time, "time_ns", lambda: real_time_ns() - 3_600 * 10**9)

    later = [new_event_id() for _ in range(100)]

    assert [first, *later] == sorted([first, *later])
    assert event_id_millis(later[-1]) == event_id_millis(first)


def test_a_full_counter_borrows_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = event_ids._GENERATOR
    frozen_ms = time.time_ns() // 1_000_000 + 10_000  # ahead of anything drawn so far
    monkeypatch.setattr(event_ids.time, "time_ns", lambda: frozen_ms * 1_000_000)
    monkeypatch.setattr(generator, "_last_ms", generator._last_ms)  # restored after: no future ids later
    first = new_event_id()
    monkeypatch.setattr(generator, "_counter", (1 << 42) - 1)  # as if 4 trillion ids were drawn this ms

    overflowed = new_event_id()

    assert overflowed > first
    assert event_id_millis(overflowed) == frozen_ms + 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_its_own_random_bits() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        os.write(write_end, new_event_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    parent_id = new_event_id()

    # Same millisecond or not, the random tails differ: the child reseeded after the fork.
    assert uuid.UUID(child_id).version == 7
    assert child_id[-8:] != parent_id[-8:]


def test_tracked_calls_carry_v7_ids(events: list[UsageTrackingEvent]) -> None:
    with track_llm_call("a") as call:
        call.set_usage(input_tokens=1, output_tokens=1)
    with track_llm_call("b") as call:
        call.set_usage(input_tokens=1, output_tokens=1)

    ids = [event.event_id for event in events]
    assert [uuid.UUID(i).version for i in ids] == [7, 7]
    assert ids == sorted(ids)
    assert uuid.UUID(CallRecord().event_id).version == 7
