"""Loopback only: nothing in this project connects to, or listens on, another address."""

from __future__ import annotations

import ipaddress
import re

from policy.errors import UsageError

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


def loopback_ip(text: str, option: str, what: str) -> str:
    """The loopback IP address `text` names, to listen on (`localhost` is 127.0.0.1, brackets
    allowed); UsageError naming `option` and `what` listens there for a host name or an address
    off the loopback interface."""
    name = "127.0.0.1" if text == "localhost" else text.strip("[]")
    try:
        address = str(ipaddress.ip_address(name))
    except ValueError:
        raise UsageError(f"{option} {text!r}: not an IP address ({what} listens on "
                         "127.0.0.1)") from None
    if not is_loopback(address):
        raise UsageError(f"{option} {text!r}: {what} listens on the loopback interface only "
                         "(127.0.0.1)")
    return address


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def host_name(text: str, what: str = "") -> str:
    """`text` as a certificate names a server: an IP address, or a host name of 1-63
    character labels (letters, digits, inner hyphens), 253 characters at most, lower-cased;
    UsageError (prefixed by `what`) for anything else, wildcards included."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if len(text) > 253 or not _HOST.fullmatch(text):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise UsageError(f"{what}{shown!r} is not a host name or an IP address (no wildcards)")
    return text.lower()
