"""Loopback only, in every Python process the tests start: this folder is put on PYTHONPATH by
tests/conftest.py, so Python imports this module at start-up (as `sitecustomize`) in the test
run and in every subprocess it spawns. A connection, datagram or name lookup for anything but
the loopback interface (or a Unix socket) fails at once with an OSError that says so, so a
missed setting (a device's default address, a real host name) fails a test instead of reaching
the network. Standard library only: it also loads into Microsoft's clients' own venvs.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_LOCAL_NAMES = ("localhost", "localhost.localdomain")
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_sendto = socket.socket.sendto
_getaddrinfo = socket.getaddrinfo


class NonLoopbackError(ConnectionRefusedError):
    """The tests' network guard refused an address off the loopback interface."""


def _loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%")[0].lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        raise NonLoopbackError(f"test network guard: {address[0]!r} is not a loopback address")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _connect_ex(self, address)


def _guarded_sendto(self: socket.socket, data: Any, *args: Any) -> int:
    _check(self, args[-1])
    return _sendto(self, data, *args)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not _loopback(host):
        raise socket.gaierror(socket.EAI_NONAME,
                              f"test network guard: {host!r} is not a loopback name")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.socket.sendto = _guarded_sendto  # type: ignore[method-assign,assignment]
socket.getaddrinfo = _guarded_getaddrinfo
