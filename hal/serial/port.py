"""A pyserial port as the host's link uses it: any URL `serial_for_url` takes, exclusive, with
reads that wait until a deadline and writes that fail in bounded time."""

from __future__ import annotations

import contextlib
import select
import socket
import time
import urllib.parse

import serial

from hal.errors import DeviceBusyError, LinkError, LinkTimeout
from policy.errors import UsageError
from policy.network import is_loopback

#: Line rate a port is opened at (a real UART; a pty or socket ignores it).
DEFAULT_BAUD = 115_200
_READ_SIZE = 1 << 16


#: pyserial URL schemes that reach a host over TCP: only on the loopback interface.
NETWORK_SCHEMES = ("socket", "rfc2217")


def check_local(url: str) -> None:
    """UsageError unless `url` is a device path, `loop://`, or `socket://` / `rfc2217://` on
    the loopback interface: nothing in this project connects to another address (pyserial's
    other schemes, such as `spy://` or `hwgrep://`, wrap or search for other ports)."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        return
    scheme = scheme.lower()
    if scheme == "loop":
        return
    if scheme not in NETWORK_SCHEMES:
        raise UsageError(f"{url}: a port is a device path, or socket:// or rfc2217:// on "
                         "127.0.0.1 (not " + scheme + "://)")
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError:
        host = None
    if host is None or not is_loopback(host):
        raise UsageError(f"{url}: a board on the network is reached on the loopback interface "
                         "only (127.0.0.1, ::1, localhost)")


#: What pyserial says when another process holds the port's lock, and how often to try again.
_LOCKED, _LOCK_POLL = "Could not exclusively lock port", 0.05


class Port:
    """A pyserial port (any URL `serial_for_url` takes), locked against other hosts while open
    (flock, where the port is a device): a port another host holds is waited for up to
    `lock_wait` seconds, then DeviceBusyError; LinkError on any other failure."""

    def __init__(self, url: str, write_timeout: float, lock_wait: float = 0.0) -> None:
        self.url = url
        check_local(url)
        deadline = time.monotonic() + lock_wait
        while True:
            try:
                # exclusive: a second host on the same port (two SerialMachines, or a stale
                # pty path that now names another emulator's pty) would steal the first one's
                # replies.
                self._serial = serial.serial_for_url(
                    url, baudrate=DEFAULT_BAUD, timeout=0, write_timeout=write_timeout,
                    exclusive=True,
                )
                break
            except (serial.SerialException, OSError, ValueError) as exc:
                if _LOCKED not in str(exc):
                    raise LinkError(f"{url}: cannot open the port: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise DeviceBusyError(f"{url}: another process is using the port "
                                          "(--wait SECONDS waits for it)") from None
                time.sleep(_LOCK_POLL)
        try:
            self._fd: int | None = self._serial.fileno()
        except (AttributeError, NotImplementedError, OSError, serial.SerialException):
            self._fd = None
        _no_delay(self._serial)

    def read(self, deadline: float) -> bytes:
        """What arrives before `deadline` (returns as soon as anything does); b"" if nothing."""
        try:
            if self._fd is not None:
                wait = max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([self._fd], [], [], wait)
                return self._serial.read(_READ_SIZE) if ready else b""
            self._serial.timeout = min(max(0.0, deadline - time.monotonic()), 0.05)
            data = self._serial.read(max(1, self._serial.in_waiting))
            self._serial.timeout = 0
            return bytes(data)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"{self.url}: the port failed while reading: {exc}") from exc

    def write(self, data: bytes) -> None:
        """Send all of `data`; LinkTimeout if the line will not take it in time."""
        try:
            self._serial.write(data)
        except serial.SerialTimeoutException as exc:
            raise LinkTimeout(f"{self.url}: the board stopped taking data") from exc
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"{self.url}: the port failed while writing: {exc}") from exc

    def close(self) -> None:
        """Close the port (errors ignored: it may be gone already)."""
        with contextlib.suppress(serial.SerialException, OSError):
            self._serial.close()


def _no_delay(port: object) -> None:
    """Turn off Nagle's algorithm on a ``socket://`` port: pyserial leaves it on, and small
    requests then wait for the peer's delayed ACK (tens of milliseconds each)."""
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
