"""A bounded local directory holding events that could not be delivered yet.

When the broker is unreachable the transport writes events here, and replays them once
it is back; events keep their `event_id`, so a replay can never bill twice. Layout:

    <dir>/seg-<ns>-<pid>-<seq>.open           being written by process <pid>
    <dir>/seg-<ns>-<pid>-<seq>.jsonl          sealed: complete, waiting for replay
    <dir>/seg-<ns>-<pid>-<seq>.jsonl.claimed-<pid2>   being replayed by process <pid2>

Each segment is JSON Lines, one event per line in its wire form. Sealing and claiming
are renames, which are atomic, so several processes (or a restarted one) can share a
directory: a segment is replayed by exactly one of them at a time, and segments left
behind by a process that died are sealed or released by the next one to open the spool.

Bounded: the directory never grows past `max_bytes`. An append that would pass the bound
is refused, and the caller must say so loudly (the transport logs an error and counts
the events as dropped). Appends are flushed to the OS at once (they survive the process
crashing) and fsynced when a segment is sealed (they then survive the host crashing).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from producers.errors import SpoolError
from schemas import UsageTrackingEvent

log = logging.getLogger("producers.spool")

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024
_OPEN = ".open"
_SEALED = ".jsonl"
_CLAIMED = ".claimed-"


@dataclass(frozen=True, slots=True)
class ClaimedSegment:
    """A sealed segment this process has taken for replay."""

    path: Path
    sealed_path: Path
    size: int


@dataclass(frozen=True, slots=True)
class SegmentContents:
    """The events of a claimed segment, and how many lines could not be read back."""

    events: list[UsageTrackingEvent]
    unreadable_lines: int


class EventSpool:
    """Bounded, crash-safe, multi-process spool of events (see module docstring)."""

    def __init__(
        self,
        directory: Path | str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.directory = Path(directory).expanduser()
        self.max_bytes = max_bytes
        self.segment_bytes = max(1, min(segment_bytes, max_bytes))
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._sequence = 0
        self._open_file: BinaryIO | None = None
        self._open_path: Path | None = None
        self._open_size = 0
        self._prepare_directory()
        self._recover_abandoned()
        self._size = self._scan_size()

    @property
    def size_bytes(self) -> int:
        """Bytes the directory holds (as last counted by this process)."""
        return self._size

    def pending_segments(self) -> int:
        """Sealed segments waiting for replay (any process's)."""
        return sum(1 for _ in self.directory.glob(f"seg-*{_SEALED}"))

    def has_pending(self) -> bool:
        """Whether anything waits for replay: sealed segments, or an open one of ours."""
        with self._lock:
            if self._open_size:
                return True
        return self.pending_segments() > 0

    def append(self, events: Sequence[UsageTrackingEvent]) -> int:
        """Write events at the end of the spool; returns how many were stored.

        Stops at the first event that would pass `max_bytes`: the caller must count the
        rest as dropped and say so. Never raises for a full spool; raises `SpoolError`
        if the disk refuses the write.
        """
        lines = [event.model_dump_json().encode() + b"\n" for event in events]
        return self.append_lines(lines)

    def append_lines(self, lines: Sequence[bytes]) -> int:
        """`append` for events already encoded as JSON lines (each ending in a newline)."""
        stored = 0
        with self._lock:
            try:
                for line in lines:
                    if self._size + len(line) > self.max_bytes:
                        break
                    handle = self._writable_segment()
                    handle.write(line)
                    self._open_size += len(line)
                    self._size += len(line)
                    stored += 1
                    if self._open_size >= self.segment_bytes:
                        self._seal_locked()
                if self._open_file is not None:
                    self._open_file.flush()
            except OSError as exc:
                raise SpoolError(f"cannot write to the spool at {self.directory}: {exc}") from exc
        return stored

    def seal(self) -> None:
        """Close the segment being written, so that it can be replayed."""
        with self._lock:
            self._seal_locked()

    def claim(self) -> ClaimedSegment | None:
        """Take the oldest sealed segment for replay, or None if there is none.

        The rename that claims it is atomic: if another process claims it first, the
        next one is tried.
        """
        for sealed in sorted(self.directory.glob(f"seg-*{_SEALED}")):
            claimed = sealed.with_name(f"{sealed.name}{_CLAIMED}{self._pid}")
            try:
                os.rename(sealed, claimed)
                return ClaimedSegment(claimed, sealed, claimed.stat().st_size)
            except FileNotFoundError:
                continue  # another process took it
        return None

    def read(self, segment: ClaimedSegment) -> SegmentContents:
        """The events of a claimed segment; unreadable lines are counted and logged."""
        events: list[UsageTrackingEvent] = []
        unreadable = 0
        with open(segment.path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    events.append(UsageTrackingEvent.model_validate_json(line))
                except ValidationError as exc:
                    # Only a torn last line of a crashed writer should ever land here.
                    unreadable += 1
                    log.error("spool segment %s line %d is not an event, skipped: %s", segment.path, number, exc)
        return SegmentContents(events, unreadable)

    def read_lines(self, segment: ClaimedSegment) -> list[bytes]:
        """The non-blank lines of a claimed segment, as written (checked by the reader)."""
        with open(segment.path, "rb") as handle:
            return [line.rstrip(b"\n") for line in handle if line.strip()]

    def delivered(self, segment: ClaimedSegment) -> None:
        """The segment's events were acknowledged: delete it and free its space."""
        with self._lock:
            segment.path.unlink(missing_ok=True)
            self._size = max(self._size - segment.size, 0)

    def release(self, segment: ClaimedSegment) -> None:
        """Replay failed: put the segment back, to be claimed again later."""
        try:
            os.rename(segment.path, segment.sealed_path)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Seal and fsync what was written, so the next process can replay it."""
        with self._lock:
            self._seal_locked()

    def _writable_segment(self) -> BinaryIO:
        if self._open_file is None:
            self._sequence += 1
            name = f"seg-{time.time_ns():020d}-{self._pid}-{self._sequence:06d}{_OPEN}"
            self._open_path = self.directory / name
            self._open_file = open(self._open_path, "ab")  # noqa: SIM115 - closed on seal
            self._open_size = 0
        return self._open_file

    def _seal_locked(self) -> None:
        handle, path = self._open_file, self._open_path
        if handle is None or path is None:
            return
        self._open_file, self._open_path = None, None
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        if self._open_size == 0:
            path.unlink(missing_ok=True)
        else:
            os.rename(path, path.with_suffix(_SEALED))
        self._open_size = 0

    def _prepare_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create the spool directory {self.directory}: {exc}") from exc
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise SpoolError(f"the spool directory {self.directory} is not writable")

    def _recover_abandoned(self) -> None:
        """Seal segments of writers that died; release claims of replayers that died.

        A file with our own pid predates this spool (nothing is written before this
        runs): a previous incarnation, as happens in containers where the pid repeats.
        """
        for path in self.directory.glob(f"seg-*{_OPEN}"):
            pid = _pid_of_segment(path.name)
            if pid is not None and _abandoned_by(pid, self._pid):
                _rename_quietly(path, path.with_suffix(_SEALED))
        for path in self.directory.glob(f"seg-*{_SEALED}{_CLAIMED}*"):
            claimer = _int_or_none(path.name.rpartition(_CLAIMED)[2])
            if claimer is not None and _abandoned_by(claimer, self._pid):
                _rename_quietly(path, path.with_name(path.name.rpartition(_CLAIMED)[0]))

    def _scan_size(self) -> int:
        total = 0
        for path in self.directory.glob("seg-*"):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
        return total


def _pid_of_segment(name: str) -> int | None:
    parts = name.split("-")
    return _int_or_none(parts[2]) if len(parts) >= 4 else None


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _abandoned_by(pid: int, own_pid: int) -> bool:
    return pid == own_pid or not _process_alive(pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _rename_quietly(source: Path, target: Path) -> None:
    try:
        os.rename(source, target)
    except FileNotFoundError:
        pass
