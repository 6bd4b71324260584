"""What the host's request engine moves: requests and their delivery state, where they come
from (a `Source`: one request, or a stream of flash chunks), how a lost one is recovered, and
the link's counters."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Protocol

from hal.serial.messages import Op

#: Bytes of header, CRC and ENDs added to a reply's payload when budgeting its line time.
FRAME_OVERHEAD = 16


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


def line_bytes(request: Request) -> int:
    """Bytes a request and its reply put on the line (for time budgets)."""
    return len(request.wire) + request.reply_bytes + FRAME_OVERHEAD


def op_name(opcode: int) -> str:
    try:
        return Op(opcode).name
    except ValueError:
        return f"opcode {opcode:#04x}"
