"""The host end of the serial protocol: a session with one board over a pyserial port.

:class:`BoardLink` handshakes (HELLO: geometry, limits, boot count, session), runs requests
through the request engine (`hal.serial.engine`: pipelined, retried, losses recovered), waits
out the board's reboots, and reopens a port that went away. It honours the `max_payload` the
board announces (docs §3.1): until the first HELLO reply it assumes the smallest, 512 bytes.
See docs/serial-protocol.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hal.errors import LinkError, LinkTimeout, PowerLoss
from hal.serial.engine import MIN_CHUNK, RequestEngine, is_new_boot
from hal.serial.framing import MAX_PAYLOAD, MIN_PAYLOAD, PROTOCOL_VERSION, FrameDecoder
from hal.serial.messages import FIRST_LIMITS, MAX_DATA, U8, BootBanner, Hello, Limits, Op
from hal.serial.port import DEFAULT_BAUD, Port
from hal.serial.requests import BootPolicy, LinkStats, Request, Single, Source

__all__ = ["MIN_CHUNK", "BoardLink"]

#: Line rate assumed for timeouts when the board announces none (baud 0: a virtual line, pty
#: or socket, which carries megabytes per second; this leaves a wide margin).
VIRTUAL_LINE_RATE = 16_000_000
#: The host never keeps more requests in flight than this, whatever the board allows.
MAX_WINDOW = 16
#: Seconds, beyond the timeout, a rebooting board may take to announce itself.
REBOOT_ALLOWANCE = 5.0
#: Seconds between attempts to reopen a port that went away.
_REOPEN_PAUSE = 0.05


class BoardLink(RequestEngine):
    """A session with one board: handshake, requests, reboots, reconnects.

    `on_boot` is called (with no arguments) each time the link has seen the board boot and
    has re-handshaken with it: after a reset it asked for, a watchdog bite, a power cycle, or
    a board that rebooted on its own or came back after the port went away. `on_console` is
    called with each console line the board pushes (CONSOLE_LINE), as it arrives.
    """

    def __init__(self, url: str, *, timeout: float = 2.0, retries: int = 5,
                 lock_wait: float = 0.0) -> None:
        if timeout <= 0 or retries < 0:
            raise ValueError(f"timeout must be > 0 and retries >= 0 (got {timeout}, {retries})")
        self.url = url
        self.lock_wait = lock_wait  # how long the first open waits for another host's lock
        self.timeout = timeout
        self.retries = retries
        self.stats = LinkStats()
        self.on_boot: Callable[[], None] | None = None
        self.on_console: Callable[[str], None] | None = None
        self.powered_off = False
        self._decoder = FrameDecoder()  # the host takes any frame up to MAX_PAYLOAD (docs §4)
        self._seq = 0
        self._clock = 0
        self._chunk_limit = FIRST_LIMITS.read_length
        self._chunk = self._chunk_limit
        self._window = 1
        self._baud = DEFAULT_BAUD
        self._boot_seen: BootBanner | None = None
        self._banner_arrived = False
        self.hello = Hello(PROTOCOL_VERSION, FIRST_LIMITS.max_payload, 1, 0, 0, 0, 0, 0, 0, 0, 0)
        self._reboot_due = False
        self._port: Port | None = None
        self._closed = False
        self._open()
        try:
            self.hello = self.handshake(BootPolicy.IGNORE)
        except BaseException:
            self._lose_port()
            raise

    # -- public ----------------------------------------------------------------------------------

    def call(self, opcode: Op, payload: bytes = b"", *, work_s: float = 0.0,
             reply_bytes: int = 0) -> bytes:
        """Send one request and return its reply payload (after any reboot it caused)."""
        source = Single(Request(opcode, payload, work_s=work_s, reply_bytes=reply_bytes))
        self.run(source)
        return source.reply

    def run(self, source: Source, *, stream: bool = False) -> None:
        """Carry out every request of `source`; afterwards wait out a reboot a reply announced.

        RemoteError (or PowerLoss) for the first error reply, after the requests already in
        flight have been answered; LinkTimeout when a request exhausts its retries; LinkError
        when the port fails or the board reboots with requests in flight.
        """
        self.settle()
        try:
            self._pump(source, stream)
        finally:
            if self._reboot_due and not self.powered_off:
                self.finish_reboot()

    def settle(self) -> None:
        """Before new work: reopen a lost port, and catch up on a reboot seen in passing."""
        if self._closed:
            raise LinkError(f"{self.url}: the link has been closed")
        if self.powered_off:
            raise PowerLoss("the board lost power; call power_on() to boot it again")
        if self._port is None:
            self._reconnect()
        if self._boot_seen is not None:
            self.finish_reboot()

    def handshake(self, on_boot: BootPolicy = BootPolicy.RESEND) -> Hello:
        """HELLO: learn the board's geometry, limits, boot count and session."""
        source = Single(Request(Op.HELLO, reply_bytes=Hello.SIZE))
        self._pump(source, stream=False, on_boot=on_boot)
        hello = Hello.unpack(source.reply)
        if hello.version != PROTOCOL_VERSION:
            raise LinkError(f"{self.url}: the board speaks protocol version {hello.version}, "
                            f"this host {PROTOCOL_VERSION}")
        if not MIN_PAYLOAD <= hello.max_payload <= MAX_PAYLOAD:
            raise LinkError(f"{self.url}: the board announces max_payload {hello.max_payload}, "
                            f"outside {MIN_PAYLOAD}..{MAX_PAYLOAD}")
        limit = hello.limits.read_length
        if limit != self._chunk_limit:  # another board (or the first): start at its limit
            self._chunk = limit
        self._chunk_limit = limit
        self._window = max(1, min(hello.window, MAX_WINDOW))
        self._baud = hello.baud or VIRTUAL_LINE_RATE
        self.hello = hello
        seen = self._boot_seen
        if seen is not None and not is_new_boot(seen.session, seen.boot_count, hello):
            self._boot_seen = None  # that banner announced the boot this HELLO describes
        return hello

    def finish_reboot(self, before: Hello | None = None) -> None:
        """Wait for the board to come back from a reboot, handshake, then call `on_boot`."""
        before = before or self.hello
        deadline = time.monotonic() + self.timeout + REBOOT_ALLOWANCE
        while True:
            banner_by = min(deadline, time.monotonic() + self.timeout)
            while self._boot_seen is None and time.monotonic() < banner_by:
                self._stale(self._receive(banner_by))
            try:
                hello = self.handshake()
            except LinkTimeout:
                if time.monotonic() >= deadline:
                    raise
                continue
            if is_new_boot(hello.session, hello.boot_count, before):
                break
            if time.monotonic() >= deadline:
                raise LinkTimeout(f"{self.url}: the board did not reboot")
            self._boot_seen = None
        self._boot_seen = None
        self._reboot_due = False
        self.powered_off = False
        self.stats.reboots += 1
        if self.on_boot is not None:
            self.on_boot()

    def reset_board(self, cause: int) -> None:
        """RESET_REQUEST, retried by boot count (never applied twice); then wait out the reboot."""
        self.settle()
        before = self.hello
        for attempt in range(self.retries + 1):
            try:
                self._pump(Single(Request(Op.RESET_REQUEST, U8.pack(cause))), stream=False,
                           retries=0, on_boot=BootPolicy.RETURN)
                break
            except LinkTimeout:
                if self._boot_seen is not None or self._rebooted_since(before):
                    break
                if attempt == self.retries:
                    raise
                self.stats.retries += 1
        self.finish_reboot(before)

    def close(self) -> None:
        """Close the port; the link cannot be used afterwards."""
        self._closed = True
        self._lose_port()

    @property
    def limits(self) -> Limits:
        """The board's payload limits (docs §3.1), from its last HELLO (512-byte ones before)."""
        return self.hello.limits

    @property
    def line_rate(self) -> int:
        """Bits per second assumed for timeouts: the board's rate, or VIRTUAL_LINE_RATE."""
        return self._baud

    def _rebooted_since(self, before: Hello) -> bool:
        try:
            hello = self.handshake()
        except LinkTimeout:
            return False
        return is_new_boot(hello.session, hello.boot_count, before)

    def _open(self) -> None:
        write_timeout = self.timeout + 2 * (MAX_DATA + 64) * 10 / DEFAULT_BAUD
        self._port = Port(self.url, write_timeout, self.lock_wait)
        self._decoder.reset()
        self._write(b"\xc0")  # end whatever partial frame the board's receiver holds

    def _lose_port(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def _reconnect(self) -> None:
        """Reopen the port (trying for `timeout` seconds) and handshake again."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._open()
                break
            except LinkError:
                self._lose_port()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(_REOPEN_PAUSE)
        self.stats.reconnects += 1
        before = self.hello
        hello = self.handshake()
        if is_new_boot(hello.session, hello.boot_count, before):
            self._boot_seen = None
            self.stats.reboots += 1
            if self.on_boot is not None:
                self.on_boot()
