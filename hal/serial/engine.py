"""The host's request engine: requests from a `Source` sent with up to `window` in flight,
replies matched by sequence number, losses detected (a reply to a later request on a FIFO
line, or a deadline) and recovered (re-sent, asked after with QUERY, or split), chunk sizes
adapted to the loss rate; and the line under it (frames out, frames in, unsolicited frames
noted). `BoardLink` adds the session on top: handshakes, reboots, reconnects.
See docs/serial-protocol.md, "Host rules"."""

from __future__ import annotations

import time
from collections.abc import Callable

from hal.errors import LinkError, LinkTimeout, PowerLoss, RemoteError
from hal.serial.framing import (
    PROTOCOL_VERSION,
    Flag,
    Frame,
    FrameDecoder,
    MalformedPayload,
    encode_frame,
)
from hal.serial.messages import (
    QUERY_SEEN,
    U8,
    U16,
    BootBanner,
    ErrorCode,
    Hello,
    Op,
    QueryAnswer,
    unpack_error,
    unpack_head,
)
from hal.serial.port import Port
from hal.serial.requests import (
    BootPolicy,
    LinkStats,
    Recovery,
    Request,
    Source,
    line_bytes,
    op_name,
)
from policy.text import printable

#: Smallest data chunk the host shrinks to on a noisy line.
MIN_CHUNK = 64


class RequestEngine:
    """Requests in flight over a port (see module doc); the state `BoardLink` sets up."""

    url: str
    timeout: float
    retries: int
    stats: LinkStats
    powered_off: bool
    hello: Hello
    _decoder: FrameDecoder
    _port: Port | None
    _seq: int
    _clock: int
    _chunk: int
    _chunk_limit: int  # the board's largest chunk (docs §3.1); `_chunk` never grows past it
    _window: int
    _baud: int
    _boot_seen: BootBanner | None
    _banner_arrived: bool
    _reboot_due: bool
    on_console: Callable[[str], None] | None

    def _lose_port(self) -> None:
        raise NotImplementedError

    # -- requests --------------------------------------------------------------------

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
        ahead = sum(line_bytes(r) for r in pending.values() if r is not request)
        request.deadline = time.monotonic() + self._budget(request, ahead)
        self._write(request.wire)

    def _budget(self, request: Request, ahead: int) -> float:
        """Seconds to wait for `request`'s reply with `ahead` bytes of traffic before it."""
        line_s = (ahead + line_bytes(request)) * 10 / self._baud
        return self.timeout + request.work_s + line_s

    def _tighten(self, pending: dict[int, Request]) -> None:
        """After progress: a deadline need not allow for traffic that has been answered."""
        now = time.monotonic()
        ahead = 0
        for request in sorted(pending.values(), key=lambda r: r.last_sent):
            if not request.parked:
                request.deadline = min(request.deadline, now + self._budget(request, ahead))
            ahead += line_bytes(request)

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
            raise LinkTimeout(f"{self.url}: no reply to {op_name(request.opcode)} (seq "
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
        (answer,), _rest = unpack_head(U8, frame.payload, "QUERY reply")
        if answer == QueryAnswer.NO_ENTRY:  # never carried out: its range goes again, split
            source.requeue(target)
            return None
        (_answer, flags, opcode), inner = unpack_head(QUERY_SEEN, frame.payload, "QUERY reply")
        if answer == QueryAnswer.NOT_KEPT:  # carried out, reply not kept: the same bytes again
            target.parked = False
            pending[target.seq] = target
            self._transmit(target, pending)
            return None
        if answer != QueryAnswer.KEPT:
            raise MalformedPayload(f"QUERY reply: answer {answer} (expected 0, 1 or 2)")
        return self._deliver(target, Frame(opcode, target.seq, Flag(flags), inner), source)

    def _deliver(self, request: Request, frame: Frame, source: Source) -> Exception | None:
        if frame.flags & Flag.REBOOTED:
            self._reboot_due = True
        if frame.is_error:
            code, message = unpack_error(frame.payload)
            text = f"{self.url}: {op_name(request.opcode)}: {printable(message)}"
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
            self._chunk = min(self._chunk_limit, self._chunk + max(MIN_CHUNK, self._chunk // 4))

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
                if is_new_boot(banner.session, banner.boot_count, self.hello):
                    self._boot_seen = banner
                    self._banner_arrived = True
            elif frame.opcode == Op.CONSOLE_LINE:
                text = frame.payload[4:].decode("utf-8", "replace")
                self.stats.console.append(text)
                del self.stats.console[:-1000]
                if self.on_console is not None:
                    self.on_console(text)
            else:
                self.stats.dropped_frames += 1
        except MalformedPayload:
            self.stats.dropped_frames += 1


def is_new_boot(session: int, boot_count: int, known: Hello) -> bool:
    return session != known.session or boot_count > known.boot_count
