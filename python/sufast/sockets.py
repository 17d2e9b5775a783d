"""The listening socket that sufast's supervisors bind before the server
starts: the multi-process parent (``workers``) and the reload supervisor
(``reload``) each bind one and hand it to the processes that serve it."""

from __future__ import annotations

import ipaddress
import socket

from .exceptions import SufastError

__all__ = ["BIND_ERROR_CODE", "listen"]

#: ``SUFAST_ERROR_CODE_BIND`` in include/sufast.h: the address is in use
#: or cannot be bound.
BIND_ERROR_CODE = 7


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0 picks a free port),
    for forked or spawned processes to serve. Raises ``SufastError`` with code
    ``BIND_ERROR_CODE`` when it cannot be bound, worded as the native
    server words it."""
    address = "127.0.0.1" if host == "localhost" else host
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise SufastError(f"host {host!r} is not an IP address", BIND_ERROR_CODE) from None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    shown = f"[{address}]:{port}" if ip.version == 6 else f"{address}:{port}"
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As the native server binds: a restart need not wait for TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        # Clients wait here while every worker is busy, or a child restarts.
        listener.listen(socket.SOMAXCONN)
    except OSError as exc:
        listener.close()
        reason = f"{exc.strerror} (os error {exc.errno})" if exc.errno else str(exc)
        raise SufastError(f"cannot listen on {shown}: {reason}", BIND_ERROR_CODE) from None
    return listener
