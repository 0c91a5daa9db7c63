"""A command's FILE argument (`-` for standard input), read as lines of bytes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import IO

from stream_app.errors import PipelineError


@contextlib.contextmanager
def open_lines(path: str) -> Iterator[IO[bytes]]:
    """Open FILE (or stdin for `-`) in binary; a file that cannot be opened is a `PipelineError`.

    Bytes, not text: a line that is not UTF-8 becomes one rejection instead of a crash.
    """
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise PipelineError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        yield handle
