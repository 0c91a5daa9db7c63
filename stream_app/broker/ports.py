"""Ports of the local broker: which are free, which accept connections, which to use.

Plain functions over sockets, so the choice of ports is testable without a JVM.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

DEFAULT_PORT = 9092
HOST = "127.0.0.1"


def choose_ports(
    requested: int | None, previous: tuple[int, int] | None, is_free: Callable[[int], bool]
) -> tuple[int, int]:
    """(port, controller port) for a start.

    A requested port is used as given. Otherwise the port of the last start is reused
    when free, so the bootstrap address people configured keeps working; else 9092 when
    free; else any free port. The controller takes the next port if free, else any.
    """
    if requested is not None:
        port = requested
    elif previous is not None and is_free(previous[0]):
        port = previous[0]
    elif is_free(DEFAULT_PORT):
        port = DEFAULT_PORT
    else:
        port = find_free_port()
    # The controller port is only used inside the broker, so any free one will do.
    if port + 1 < 65_536 and is_free(port + 1):
        return port, port + 1
    return port, _free_port_other_than(port)



def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether the broker could bind `port` on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The JVM binds with SO_REUSEADDR, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def accepts_connections(port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False



def _free_port_other_than(port: int) -> int:
    while True:
        candidate = find_free_port()
        if candidate != port:
            return candidate

