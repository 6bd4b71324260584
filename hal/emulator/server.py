"""The emulated board: a machine served over the serial protocol on a pty or a loopback port.

Run ``python -m hal.emulator --flash PATH (--pty | --tcp 127.0.0.1:PORT) [options]``: the first
line on stdout ends with the port to open (a pty path, or ``socket://127.0.0.1:PORT``); the
options and exit codes are in :mod:`hal.emulator.cli`. In Python, :func:`start_emulator` runs
the board side in a thread.

Line model: the board's receiver and transmitter are independent (full duplex). With
``baud`` set, the transmitter is paced at that rate (10 bits per byte); the receiver takes
bytes as fast as they come. Line faults (corrupt / drop / duplicate, per byte) are applied in
both directions: to what the board receives before it decodes it, and to what it transmits.
On a reboot the board goes silent for ``reboot_delay`` seconds (input is discarded), then
sends a BOOT_BANNER.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time
import tty
from collections.abc import Callable

from hal.emulator.agent import DEFAULT_WINDOW, BoardAgent
from hal.emulator.line import DEFAULT_REBOOT_DELAY, BoardLine
from hal.emulator.line_noise import FaultCounts, FaultRates
from hal.errors import HalError
from hal.interfaces import Closeable, Machine
from hal.serial.framing import MAX_PAYLOAD
from policy.network import LOOPBACK_HOSTS

_READ_SIZE = 1 << 16
#: Most bytes taken from the line before the board works on them (a pty gives <= 4 KiB a read).
_DRAIN_LIMIT = 1 << 18
_IDLE_WAIT = 0.1


class Emulator(Closeable):
    """Serves `machine` as a board on a pty or a loopback TCP port.

    Open the port with `open_pty` or `listen_tcp` (each returns the URL a host opens), then
    `serve_forever` (blocking) or `start` (a thread). `stop` ends serving; `close` releases the
    port. The machine stays the caller's to close. Creating it is the board's power-up
    (`BoardAgent`); `max_payload` and `window` are what it announces in HELLO.
    """

    def __init__(
        self,
        machine: Machine,
        *,
        baud: int = 0,
        rates: FaultRates | None = None,
        seed: int | None = None,
        reboot_delay: float = DEFAULT_REBOOT_DELAY,
        window: int = DEFAULT_WINDOW,
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        self.agent = BoardAgent(machine, baud=baud, window=window, max_payload=max_payload)
        self.line = BoardLine(agent=self.agent, baud=baud, rates=rates, seed=seed,
                              reboot_delay=reboot_delay)
        self.url = ""
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # wakes the loop's select when asked to stop
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._listener: socket.socket | None = None

    # -- ports --------------------------------------------------------------------------------

    def open_pty(self) -> str:
        """Open a pseudo-terminal pair in raw mode; return the path a host opens (HalError if
        the system has none to give)."""
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise HalError(f"cannot open a pseudo-terminal: {exc.strerror}") from exc
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave  # keeping the slave open: no EIO on close
        self.url = os.ttyname(slave)
        self.line.queue([self.agent.banner_frame()])  # the board has just powered up
        return self.url

    def listen_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on a loopback port; return ``socket://HOST:PORT``."""
        if host not in LOOPBACK_HOSTS:
            raise HalError(f"the emulator listens on loopback only, not {host!r}")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
            listener.listen(1)
        except OSError as exc:
            listener.close()
            raise HalError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._listener = listener
        bound = listener.getsockname()[1]
        self.url = f"socket://{'[' + host + ']' if family == socket.AF_INET6 else host}:{bound}"
        return self.url

    # -- running --------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve until `stop` (pty: one endless line; TCP: one connection after another)."""
        if self._master is not None:
            self._serve_fd(self._master, self._read_fd, self._write_fd)
        elif self._listener is not None:
            self._serve_tcp(self._listener)
        else:
            raise HalError("open a port (open_pty or listen_tcp) before serving")

    def start(self) -> Emulator:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="emulator", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the serving loop to end (safe from a signal handler); `stop` also waits."""
        self._stop.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def stop(self) -> None:
        """Stop serving (and wait for the thread, if `start` made one)."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        """Stop, then close the port: a host on the other end sees the line go away."""
        self.stop()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    @property
    def fault_counts(self) -> tuple[FaultCounts, FaultCounts]:
        """Faults injected so far: (board receive, board transmit)."""
        return self.line.rx_faults.counts, self.line.tx_faults.counts

    # -- loops ----------------------------------------------------------------------------------

    def _serve_fd(
        self, fd: int, read: Callable[[int], bytes | None], write: Callable[[int, bytes], int]
    ) -> None:
        """Pump one connection until it closes (read returns None) or `stop` is set.

        One thread reads, works and writes: the board's work on a frame is short next to the
        line time of the frame, and a second thread reading meanwhile would only contend with
        it for the GIL (a pty hands over a few KiB per read, so there are many reads).
        """
        line = self.line
        while not self._stop.is_set():
            now = time.monotonic()
            wait = line.due(now)
            writable = [fd] if line.output_ready(now) else []
            try:
                ready_r, ready_w, _ = select.select([fd, self._wake_r], writable, [], wait)
            except (OSError, ValueError):
                return
            if self._wake_r in ready_r:
                return
            if ready_r:
                data, open_ = _drain(fd, read)
                line.on_receive(data)
                if not open_:
                    return
            if ready_w:
                written = write(fd, line.take_output())
                line.sent(written)

    def _serve_tcp(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([listener.fileno(), self._wake_r], [], [],
                                        self.line.due(time.monotonic()))
            self.line.drop_output()
            if self._wake_r in ready:
                return
            if not ready:
                continue
            conn, _addr = listener.accept()
            with conn:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._serve_fd(conn.fileno(), _socket_reader(conn), _socket_writer(conn))

    @staticmethod
    def _read_fd(fd: int) -> bytes | None:
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:  # no host has the pty open: nothing to read yet
                time.sleep(0.01)
                return b""
            return None
        return data if data else None

    @staticmethod
    def _write_fd(fd: int, data: bytes) -> int:
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0


def _drain(fd: int, read: Callable[[int], bytes | None]) -> tuple[bytes, bool]:
    """What `read` has for us now (up to _DRAIN_LIMIT bytes), and False once the connection
    has closed."""
    chunks: list[bytes] = []
    size = 0
    while size < _DRAIN_LIMIT:
        data = read(fd)
        if data is None:
            return b"".join(chunks), False
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks), True


def _socket_reader(conn: socket.socket) -> Callable[[int], bytes | None]:
    def read(_fd: int) -> bytes | None:
        try:
            data = conn.recv(_READ_SIZE)
        except BlockingIOError:
            return b""
        except OSError:
            return None
        return data if data else None

    return read


def _socket_writer(conn: socket.socket) -> Callable[[int, bytes], int]:
    def write(_fd: int, data: bytes) -> int:
        try:
            return conn.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            return len(data)  # the peer is gone; the read side notices and ends the connection

    return write


def start_emulator(
    machine: Machine,
    *,
    transport: str = "pty",
    port: int = 0,
    baud: int = 0,
    rates: FaultRates | None = None,
    seed: int | None = None,
    reboot_delay: float = DEFAULT_REBOOT_DELAY,
    window: int = DEFAULT_WINDOW,
    max_payload: int = MAX_PAYLOAD,
) -> Emulator:
    """Serve `machine` in a thread on a fresh pty (``transport="pty"``) or loopback ``"tcp"``
    port; the returned emulator's `url` is what a host opens. Close it when done.
    """
    emulator = Emulator(machine, baud=baud, rates=rates, seed=seed, reboot_delay=reboot_delay,
                        window=window, max_payload=max_payload)
    if transport == "pty":
        emulator.open_pty()
    elif transport == "tcp":
        emulator.listen_tcp("127.0.0.1", port)
    else:
        raise HalError(f"unknown transport {transport!r}: expected 'pty' or 'tcp'")
    return emulator.start()
