"""The host end of the serial protocol: requests over a pyserial port, pipelined and retried.

:class:`BoardLink` sends requests from a :class:`Source` with up to `window` in flight, matches
replies by sequence number, detects losses (a reply to a later request, or a deadline) and
recovers them: a request is re-sent with the same sequence number (the board answers a
duplicate from its reply cache), except a data chunk larger than MIN_CHUNK: a program chunk is
first asked after with QUERY, and only if the board never saw it is its range sent again, in
smaller pieces under new sequence numbers; a lost read is simply re-asked in smaller pieces.
Chunk sizes adapt to the loss rate. See docs/serial-protocol.md, "Host rules".
"""

from __future__ import annotations

import contextlib
import enum
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import serial

from hal.errors import LinkError, LinkTimeout, PowerLoss, RemoteError
from hal.serial.framing import (
    MAX_DATA,
    PROTOCOL_VERSION,
    QUERY_SEEN,
    U8,
    U16,
    BootBanner,
    ErrorCode,
    Flag,
    Frame,
    FrameDecoder,
    Hello,
    MalformedPayload,
    Op,
    encode_frame,
    unpack_error,
    unpack_head,
)

#: Line rate a port is opened at (a real UART; a pty or socket ignores it).
DEFAULT_BAUD = 115_200
#: Line rate assumed for timeouts when the board announces none (baud 0: a virtual line, pty
#: or socket, which carries megabytes per second; this leaves a wide margin).
VIRTUAL_LINE_RATE = 16_000_000
#: Smallest data chunk the host shrinks to on a noisy line.
MIN_CHUNK = 64
#: The host never keeps more requests in flight than this, whatever the board allows.
MAX_WINDOW = 16
#: Seconds, beyond the timeout, a rebooting board may take to announce itself.
REBOOT_ALLOWANCE = 5.0
#: Seconds between attempts to reopen a port that went away.
_REOPEN_PAUSE = 0.05
_READ_SIZE = 1 << 16
_FRAME_OVERHEAD = 16  # header, CRC, ENDs: added to reply sizes when budgeting time


class BootPolicy(enum.Enum):
    """What a run does when the board announces a boot while requests are in flight."""

    RAISE = "raise"  # LinkError: the board lost whatever was in flight
    RESEND = "resend"  # send what is in flight again at once (a handshake)
    RETURN = "return"  # stop waiting (a reset request: the boot is the answer)
    IGNORE = "ignore"  # the first handshake: nothing is known yet to judge a banner by


class Recovery(enum.Enum):
    """How a lost request is recovered."""

    RESEND = "resend"  # same frame, same sequence number (the board answers duplicates)
    QUERY = "query"  # ask whether the board applied it; if not, re-send its range in pieces
    SPLIT = "split"  # idempotent: re-send its range in pieces under new sequence numbers


@dataclass(eq=False)
class Request:
    """One request and its delivery state."""

    opcode: Op
    payload: bytes = b""
    work_s: float = 0.0  # board-side work time allowed on top of the line time
    reply_bytes: int = 0  # expected reply payload size (for the time budget)
    span: tuple[int, int] | None = None  # (offset, length) of a stream chunk
    recovery: Recovery = Recovery.RESEND
    target: Request | None = None  # for a QUERY: the request asked after
    seq: int = 0
    wire: bytes = b""
    first_sent: int = 0
    last_sent: int = 0
    deadline: float = 0.0
    attempts: int = 0
    parked: bool = False  # a QUERY about it is in flight
    probe: bool = False  # a PING sent after a stream's last chunk to reveal tail losses


class Source(Protocol):
    """Where a run's requests come from and where their results go."""

    def next(self, chunk: int) -> Request | None:
        """The next request (data chunks at most `chunk` bytes), or None when all are sent."""

    def done(self, request: Request, payload: bytes) -> None:
        """`request` succeeded with reply `payload`."""

    def requeue(self, request: Request) -> None:
        """`request` was not applied (or is idempotent): send its span again later."""


class Single:
    """A Source of exactly one request; `reply` holds its reply payload afterwards."""

    def __init__(self, request: Request) -> None:
        self._request: Request | None = request
        self.reply = b""

    def next(self, chunk: int) -> Request | None:
        request, self._request = self._request, None
        return request

    def done(self, request: Request, payload: bytes) -> None:
        self.reply = payload

    def requeue(self, request: Request) -> None:
        self._request = replace(request, seq=0, attempts=0, parked=False)


@dataclass
class LinkStats:
    """Counters of one SerialMachine's link since it was opened."""

    requests: int = 0  # distinct requests sent (queries and probes included)
    retries: int = 0  # re-sends, queries and re-split ranges after a loss
    resyncs: int = 0  # runs of received bytes thrown away (noise, bad CRC, truncation)
    dropped_frames: int = 0  # good frames the host ignored (stale or duplicate replies)
    timeouts: int = 0  # deadlines that expired
    queries: int = 0  # QUERY requests sent
    reboots: int = 0  # board reboots waited out
    reconnects: int = 0  # times the port was reopened
    bytes_sent: int = 0
    bytes_received: int = 0
    console: list[str] = field(default_factory=list)  # lines the board pushed (last 1,000)


class Port:
    """A pyserial port (any URL `serial_for_url` takes), locked against other hosts while open
    (flock, where the port is a device); LinkError on any failure."""

    def __init__(self, url: str, write_timeout: float) -> None:
        self.url = url
        try:
            # exclusive: a second host on the same port (two SerialMachines, or a stale pty
            # path that now names another emulator's pty) would steal the first one's replies.
            self._serial = serial.serial_for_url(
                url, baudrate=DEFAULT_BAUD, timeout=0, write_timeout=write_timeout,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"{url}: cannot open the port: {exc}") from exc
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


class BoardLink:
    """A session with one board: handshake, requests, reboots, reconnects.

    `on_boot` is called (with no arguments) each time the link has seen the board boot and
    has re-handshaken with it: after a reset it asked for, a watchdog bite, a power cycle, or
    a board that rebooted on its own or came back after the port went away.
    """

    def __init__(self, url: str, *, timeout: float = 2.0, retries: int = 5) -> None:
        if timeout <= 0 or retries < 0:
            raise ValueError(f"timeout must be > 0 and retries >= 0 (got {timeout}, {retries})")
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.stats = LinkStats()
        self.on_boot: Callable[[], None] | None = None
        self.powered_off = False
        self._decoder = FrameDecoder()
        self._seq = 0
        self._clock = 0
        self._chunk = MAX_DATA
        self._window = 1
        self._baud = DEFAULT_BAUD
        self._boot_seen: BootBanner | None = None
        self._banner_arrived = False
        self.hello = Hello(PROTOCOL_VERSION, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)
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
        source = Single(Request(Op.HELLO, reply_bytes=Hello.LAYOUT.size))
        self._pump(source, stream=False, on_boot=on_boot)
        hello = Hello.unpack(source.reply)
        if hello.version != PROTOCOL_VERSION:
            raise LinkError(f"{self.url}: the board speaks protocol version {hello.version}, "
                            f"this host {PROTOCOL_VERSION}")
        self._window = max(1, min(hello.window, MAX_WINDOW))
        self._baud = hello.baud or VIRTUAL_LINE_RATE
        self.hello = hello
        seen = self._boot_seen
        if seen is not None and not _is_new_boot(seen.session, seen.boot_count, hello):
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
            if _is_new_boot(hello.session, hello.boot_count, before):
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
    def line_rate(self) -> int:
        """Bits per second assumed for timeouts: the board's rate, or VIRTUAL_LINE_RATE."""
        return self._baud

    # -- the request engine --------------------------------------------------------------------

    def _pump(self, source: Source, stream: bool, retries: int | None = None,
              on_boot: BootPolicy = BootPolicy.RAISE) -> None:
        limit = self.retries if retries is None else retries
        self._banner_arrived = False  # only a banner that comes while this run waits counts
        pending: dict[int, Request] = {}
        failure: Exception | None = None
        probe: Request | None = None
        sent = 0
        while True:
            exhausted = False
            while failure is None and len(pending) < self._window:
                request = source.next(self._chunk)  # lost ranges may come back: ask each time
                if request is None:
                    exhausted = True
                    break
                self._send(request, pending)
                sent += 1
            if stream and exhausted and sent > 1 and pending and (
                probe is None or pending.get(probe.seq) is not probe
            ):
                probe = Request(Op.PING, probe=True)
                self._send(probe, pending)
            if not pending:
                break
            deadline = min((r.deadline for r in pending.values() if not r.parked),
                           default=time.monotonic() + self.timeout)
            answered = 0
            for frame in self._receive(deadline):
                request = pending.get(frame.seq)
                if request is None or frame.opcode != request.opcode:
                    self.stats.dropped_frames += 1
                    continue
                del pending[frame.seq]
                answered += 1
                self._losses_before(request, pending, source, limit)
                failure = failure or self._conclude(request, frame, pending, source)
            if answered and pending:
                self._tighten(pending)
            now = time.monotonic()
            if self._banner_arrived and pending and on_boot is not BootPolicy.IGNORE:
                if on_boot is BootPolicy.RETURN:
                    return
                if on_boot is BootPolicy.RAISE and not self._reboot_due:
                    raise LinkError(f"{self.url}: the board rebooted with {len(pending)} "
                                    "request(s) in flight")
                for request in pending.values():  # dropped by the rebooting board
                    request.deadline = min(request.deadline, now)
            self._banner_arrived = False
            if isinstance(failure, PowerLoss):
                break
            for request in [r for r in pending.values() if not r.parked and r.deadline <= now]:
                self.stats.timeouts += 1
                self._recover(request, pending, source, limit)
        if failure is not None:
            raise failure

    def _send(self, request: Request, pending: dict[int, Request]) -> None:
        request.seq = self._next_seq(pending)
        request.wire = encode_frame(Frame(request.opcode, request.seq, Flag.NONE,
                                          request.payload))
        self.stats.requests += 1
        self._transmit(request, pending)
        pending[request.seq] = request

    def _transmit(self, request: Request, pending: dict[int, Request]) -> None:
        self._clock += 1
        request.first_sent = request.first_sent or self._clock
        request.last_sent = self._clock
        ahead = sum(_line_bytes(r) for r in pending.values() if r is not request)
        request.deadline = time.monotonic() + self._budget(request, ahead)
        self._write(request.wire)

    def _budget(self, request: Request, ahead: int) -> float:
        """Seconds to wait for `request`'s reply with `ahead` bytes of traffic before it."""
        line_s = (ahead + _line_bytes(request)) * 10 / self._baud
        return self.timeout + request.work_s + line_s

    def _tighten(self, pending: dict[int, Request]) -> None:
        """After progress: a deadline need not allow for traffic that has been answered."""
        now = time.monotonic()
        ahead = 0
        for request in sorted(pending.values(), key=lambda r: r.last_sent):
            if not request.parked:
                request.deadline = min(request.deadline, now + self._budget(request, ahead))
            ahead += _line_bytes(request)

    def _losses_before(self, answered: Request, pending: dict[int, Request], source: Source,
                       limit: int) -> None:
        """The line is FIFO: a request sent before `answered` and still unanswered was lost."""
        for request in list(pending.values()):
            if not request.parked and request.last_sent < answered.first_sent:
                self._recover(request, pending, source, limit)

    def _recover(self, request: Request, pending: dict[int, Request], source: Source,
                 limit: int) -> None:
        request.attempts += 1
        self.stats.retries += 1
        if request.attempts > limit:
            raise LinkTimeout(f"{self.url}: no reply to {_name(request.opcode)} (seq "
                              f"{request.seq}) after {request.attempts} attempt(s)")
        self._shrink(request)
        span = request.span
        splittable = span is not None and span[1] > MIN_CHUNK
        if request.recovery is Recovery.SPLIT and splittable:
            del pending[request.seq]
            source.requeue(request)
        elif request.recovery is Recovery.QUERY and splittable:
            request.parked = True
            self.stats.queries += 1
            self._send(Request(Op.QUERY, U16.pack(request.seq), target=request,
                               reply_bytes=QUERY_SEEN.size), pending)
        else:
            self._transmit(request, pending)

    def _conclude(self, request: Request, frame: Frame, pending: dict[int, Request],
                  source: Source) -> Exception | None:
        """Deliver a reply; the error it carries, if any."""
        if request.probe:
            return None
        target = request.target
        if target is None:
            return self._deliver(request, frame, source)
        if pending.get(target.seq) is not target:
            return None  # its own reply came after all
        del pending[target.seq]
        if frame.is_error:
            return self._deliver(target, frame, source)
        (seen,), _rest = unpack_head(U8, frame.payload, "QUERY reply")
        if not seen:
            source.requeue(target)
            return None
        (_seen, flags, opcode), inner = unpack_head(QUERY_SEEN, frame.payload, "QUERY reply")
        return self._deliver(target, Frame(opcode, target.seq, Flag(flags), inner), source)

    def _deliver(self, request: Request, frame: Frame, source: Source) -> Exception | None:
        if frame.flags & Flag.REBOOTED:
            self._reboot_due = True
        if frame.is_error:
            code, message = unpack_error(frame.payload)
            text = f"{self.url}: {_name(request.opcode)}: {message}"
            if code == ErrorCode.POWER_LOSS:
                self.powered_off = True
                return PowerLoss(text)
            return RemoteError(code, text)
        source.done(request, frame.payload)
        self._grow(request)
        return None

    def _shrink(self, request: Request) -> None:
        if request.span is not None:
            self._chunk = max(MIN_CHUNK, min(self._chunk, request.span[1]) // 2)

    def _grow(self, request: Request) -> None:
        if request.span is not None and request.span[1] >= self._chunk // 2:
            self._chunk = min(MAX_DATA, self._chunk + max(MIN_CHUNK, self._chunk // 4))

    def _next_seq(self, pending: dict[int, Request]) -> int:
        while True:
            self._seq = self._seq % 0xFFFF + 1
            if self._seq not in pending:
                return self._seq

    # -- the line ------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._port is None:
            raise LinkError(f"{self.url}: the port is closed")
        try:
            self._port.write(data)
        except LinkTimeout:
            raise
        except LinkError:
            self._lose_port()
            raise
        self.stats.bytes_sent += len(data)

    def _receive(self, deadline: float) -> list[Frame]:
        """Replies that arrive before `deadline`; unsolicited frames are dealt with here."""
        if self._port is None:
            raise LinkError(f"{self.url}: the port is closed")
        try:
            data = self._port.read(deadline)
        except LinkError:
            self._lose_port()
            raise
        if not data:
            return []
        self.stats.bytes_received += len(data)
        dropped = self._decoder.stats.dropped
        frames = self._decoder.feed(data)
        self.stats.resyncs += self._decoder.stats.dropped - dropped
        replies = []
        for frame in frames:
            if frame.version != PROTOCOL_VERSION or not (frame.is_reply or frame.is_unsolicited):
                self.stats.dropped_frames += 1
            elif frame.is_unsolicited:
                self._unsolicited(frame)
            else:
                replies.append(frame)
        return replies

    def _stale(self, frames: list[Frame]) -> None:
        self.stats.dropped_frames += len(frames)

    def _unsolicited(self, frame: Frame) -> None:
        try:
            if frame.opcode == Op.BOOT_BANNER:
                banner = BootBanner.unpack(frame.payload)
                if _is_new_boot(banner.session, banner.boot_count, self.hello):
                    self._boot_seen = banner
                    self._banner_arrived = True
            elif frame.opcode == Op.CONSOLE_LINE:
                text = frame.payload[4:].decode("utf-8", "replace")
                self.stats.console.append(text)
                del self.stats.console[:-1000]
            else:
                self.stats.dropped_frames += 1
        except MalformedPayload:
            self.stats.dropped_frames += 1

    def _rebooted_since(self, before: Hello) -> bool:
        try:
            hello = self.handshake()
        except LinkTimeout:
            return False
        return _is_new_boot(hello.session, hello.boot_count, before)

    def _open(self) -> None:
        write_timeout = self.timeout + 2 * (MAX_DATA + 64) * 10 / DEFAULT_BAUD
        self._port = Port(self.url, write_timeout)
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
        if _is_new_boot(hello.session, hello.boot_count, before):
            self._boot_seen = None
            self.stats.reboots += 1
            if self.on_boot is not None:
                self.on_boot()


def _no_delay(port: object) -> None:
    """Turn off Nagle's algorithm on a ``socket://`` port: pyserial leaves it on, and small
    requests then wait for the peer's delayed ACK (tens of milliseconds each)."""
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _line_bytes(request: Request) -> int:
    return len(request.wire) + request.reply_bytes + _FRAME_OVERHEAD


def _is_new_boot(session: int, boot_count: int, known: Hello) -> bool:
    return session != known.session or boot_count > known.boot_count


def _name(opcode: int) -> str:
    try:
        return Op(opcode).name
    except ValueError:
        return f"opcode {opcode:#04x}"
