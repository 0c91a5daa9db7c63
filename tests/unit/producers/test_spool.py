"""`EventSpool`: bounded, replayable, crash-safe; a full spool refuses loudly instead of growing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producers.errors import SpoolError
from producers.spool import EventSpool
from tests.factories import make_event


def event_bytes() -> int:
    return len(make_event().model_dump_json().encode()) + 1


def test_appended_events_come_back_unchanged_after_seal_and_claim(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path)
    events = [make_event(project_id=f"p{n % 2}") for n in range(10)]

    assert spool.append(events) == 10
    spool.seal()
    segment = spool.claim()
    assert segment is not None
    contents = spool.read(segment)

    assert contents.events == events
    assert contents.unreadable_lines == 0


def test_delivered_segments_free_their_space_and_nothing_is_left(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path)
    spool.append([make_event() for _ in range(5)])
    spool.seal()
    segment = spool.claim()

    spool.delivered(segment)

    assert spool.size_bytes == 0
    assert not spool.has_pending()
    assert list(tmp_path.iterdir()) == []


def test_a_released_segment_is_claimed_again(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path)
    spool.append([make_event()])
    spool.seal()
    segment = spool.claim()
    assert spool.claim() is None  # claimed segments are not handed out twice

    spool.release(segment)

    assert spool.claim() is not None


def test_the_bound_is_never_passed_and_refusals_are_reported(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path, max_bytes=event_bytes() * 3 + 10)

    stored = spool.append([make_event() for _ in range(5)])

    assert stored == 3
    assert spool.size_bytes <= spool.max_bytes
    assert spool.append([make_event()]) == 0
    assert sum(path.stat().st_size for path in tmp_path.iterdir()) <= spool.max_bytes


def test_segments_rotate_at_their_size_and_replay_oldest_first(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path, segment_bytes=event_bytes() * 2)
    first, second, third = make_event(), make_event(), make_event()
    spool.append([first, second, third])
    spool.seal()

    claimed = [spool.claim(), spool.claim()]

    assert [spool.read(segment).events for segment in claimed] == [[first, second], [third]]


def test_segments_of_a_dead_writer_are_sealed_and_replayed_by_the_next_process(tmp_path: Path) -> None:
    dead_pid = _pid_of_a_finished_process()
    events = [make_event() for _ in range(3)]
    lines = b"".join(event.model_dump_json().encode() + b"\n" for event in events)
    (tmp_path / f"seg-{1:020d}-{dead_pid}-000001.open").write_bytes(lines + b'{"torn": ')
    (tmp_path / f"seg-{2:020d}-{dead_pid}-000002.jsonl.claimed-{dead_pid}").write_bytes(lines)

    spool = EventSpool(tmp_path)
    replayed = []
    unreadable = 0
    while (segment := spool.claim()) is not None:
        contents = spool.read(segment)
        replayed += contents.events
        unreadable += contents.unreadable_lines
        spool.delivered(segment)

    assert replayed == events + events
    assert unreadable == 1  # the torn last line of the crashed writer, logged and counted


def test_own_pid_segments_from_a_previous_incarnation_are_recovered(tmp_path: Path) -> None:
    # Containers restart with the same pid: such a file cannot be ours, we have written nothing.
    event = make_event()
    (tmp_path / f"seg-{1:020d}-{os.getpid()}-000001.open").write_bytes(event.model_dump_json().encode() + b"\n")

    spool = EventSpool(tmp_path)
    segment = spool.claim()

    assert segment is not None and spool.read(segment).events == [event]


def test_an_unwritable_directory_is_refused_at_once(tmp_path: Path) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("x")

    with pytest.raises(SpoolError, match="cannot create the spool directory"):
        EventSpool(target / "spool")


def _pid_of_a_finished_process() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
