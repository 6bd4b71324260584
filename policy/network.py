"""Loopback only: nothing in this project connects to, or listens on, another address."""

from __future__ import annotations

import ipaddress

#: Host names that are the loopback interface (as the feed, the emulator and the API accept them).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """True for `localhost` and any loopback IP address (127.0.0.0/8, ::1), brackets allowed."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
