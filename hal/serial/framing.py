"""The serial board protocol's frames: SLIP framing, the frame header, the CRC, the decoder.

Pure functions and data only, no I/O. `docs/serial-protocol.md` is the byte-for-byte
specification; this module and `hal.serial.messages` (opcodes, payloads) are its reference
implementation on both sides of the line (`hal.serial.link` on the host, `hal.emulator.agent`
on the emulated board).

A frame on the wire is ``END || slip_escape(header || payload || crc32) || END`` where the header
is ``u8 version, u8 opcode, u8 flags, u16 seq, u32 length`` (little-endian) and the CRC is
``zlib.crc32`` of header and payload, stored little-endian.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter

from hal.errors import LinkError

PROTOCOL_VERSION = 1

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD
_END_B = bytes([END])
_ESC_B = bytes([ESC])
_ESCAPED_END = bytes([ESC, ESC_END])
_ESCAPED_ESC = bytes([ESC, ESC_ESC])
_ESCAPE_CODES = bytes([ESC_END, ESC_ESC])
_UNESCAPE = bytes.maketrans(_ESCAPE_CODES, bytes([END, ESC]))
_first_byte = itemgetter(0)

HEADER = struct.Struct("<BBBHI")
HEADER_SIZE = HEADER.size  # 9
CRC = struct.Struct("<I")
CRC_SIZE = CRC.size  # 4

#: Largest payload any frame may carry (`MAX_PAYLOAD`, docs §3.1). A board announces its own
#: maximum `P` in HELLO, MIN_PAYLOAD..MAX_PAYLOAD; its decoder drops frames declaring more.
MAX_PAYLOAD = 64 * 1024 + 64
MIN_PAYLOAD = 512
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE


def max_encoded(max_payload: int) -> int:
    """Longest encoded frame with a payload of `max_payload` bytes (every byte escaped, plus
    both END delimiters): what a receiver of that maximum must be able to hold."""
    return 2 * (HEADER_SIZE + max_payload + CRC_SIZE) + 2


#: Longest encoded frame of any board (for `MAX_PAYLOAD`).
MAX_ENCODED = max_encoded(MAX_PAYLOAD)
#: Sequence number of unsolicited frames; requests use 1..65535 and wrap to 1.
UNSOLICITED_SEQ = 0


class MalformedPayload(LinkError):
    """A frame checked out (CRC, length) but its payload does not fit its opcode's layout."""


class Flag(enum.IntFlag):
    """Bits of the header's flags byte."""

    NONE = 0
    REPLY = 0x01
    ERROR = 0x02
    UNSOLICITED = 0x04
    REBOOTED = 0x08  # reply: the board reset while handling this request and reboots next


# --------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: header fields and payload (the CRC has already been checked)."""

    opcode: int
    seq: int
    flags: Flag = Flag.NONE
    payload: bytes = b""
    version: int = PROTOCOL_VERSION
    #: The CRC the frame arrived with (0 for a frame built locally); not part of its identity.
    crc: int = field(default=0, compare=False)

    @property
    def is_reply(self) -> bool:
        """True for a reply (normal or error) to a request."""
        return bool(self.flags & Flag.REPLY)

    @property
    def is_error(self) -> bool:
        """True for an error reply."""
        return bool(self.flags & Flag.ERROR)

    @property
    def is_unsolicited(self) -> bool:
        """True for a frame the board sent on its own (boot banner, console line)."""
        return bool(self.flags & Flag.UNSOLICITED)


def frame_body(frame: Frame) -> bytes:
    """Header, payload and CRC of `frame`, before SLIP escaping."""
    header, crc = _header_and_crc(frame)
    return b"".join((header, frame.payload, crc))


def _header_and_crc(frame: Frame) -> tuple[bytes, bytes]:
    header = HEADER.pack(frame.version, frame.opcode, int(frame.flags), frame.seq,
                         len(frame.payload))
    return header, CRC.pack(zlib.crc32(frame.payload, zlib.crc32(header)))


def slip_escape(raw: bytes) -> bytes:
    """Escape END and ESC bytes (ESC first, so escapes are not escaped again)."""
    return raw.replace(_ESC_B, _ESCAPED_ESC).replace(_END_B, _ESCAPED_END)


def slip_unescape(escaped: bytes) -> bytes | None:
    """Undo `slip_escape`; None if `escaped` holds an ESC not followed by ESC_END or ESC_ESC.

    Split at every ESC (memchr-fast), check the byte after each in one translate, join the
    pieces without the ESCs and put each escaped byte right in place: no per-byte Python work.
    """
    parts = escaped.split(_ESC_B)
    if len(parts) == 1:
        return escaped
    escapes = parts[1:]
    if b"" in escapes:  # ESC ESC, or ESC at the end
        return None
    codes = bytes(map(_first_byte, escapes))
    if codes.translate(None, _ESCAPE_CODES):
        return None
    out = bytearray().join(parts)
    for at, byte in zip(accumulate(map(len, parts[:-1])), codes.translate(_UNESCAPE),
                        strict=True):
        out[at] = byte
    return bytes(out)


def encode_frame(frame: Frame) -> bytes:
    """The bytes to put on the wire for `frame`: END, escaped body, END."""
    if len(frame.payload) > MAX_PAYLOAD:
        raise MalformedPayload(
            f"payload of {len(frame.payload)} bytes exceeds the maximum of {MAX_PAYLOAD}")
    if not 0 <= frame.seq <= 0xFFFF:
        raise MalformedPayload(f"sequence number {frame.seq} does not fit in 16 bits")
    header, crc = _header_and_crc(frame)  # the payload is escaped in place, not copied first
    return b"".join((_END_B, slip_escape(header), slip_escape(frame.payload), slip_escape(crc),
                     _END_B))


class Reject(enum.Enum):
    """Why the decoder threw a candidate frame away."""

    GARBAGE = "garbage"  # bad escape, or too short to hold a header and CRC
    BAD_CRC = "bad_crc"
    BAD_LENGTH = "bad_length"  # length field disagrees with the bytes received
    OVERSIZE = "oversize"  # declared or accumulated size above the maximum


def parse_body(body: bytes, max_payload: int = MAX_PAYLOAD) -> Frame | Reject:
    """Check and split an unescaped frame body; a Frame, or why it is rejected (a declared
    length over `max_payload`, the receiver's own maximum, is OVERSIZE)."""
    if len(body) < HEADER_SIZE + CRC_SIZE:
        return Reject.GARBAGE
    version, opcode, flags, seq, length = HEADER.unpack_from(body)
    if length > max_payload:
        return Reject.OVERSIZE
    if length != len(body) - HEADER_SIZE - CRC_SIZE:
        return Reject.BAD_LENGTH
    (crc,) = CRC.unpack_from(body, len(body) - CRC_SIZE)
    if zlib.crc32(memoryview(body)[:-CRC_SIZE]) != crc:
        return Reject.BAD_CRC
    return Frame(opcode, seq, Flag(flags & 0xFF), body[HEADER_SIZE:-CRC_SIZE], version, crc)


@dataclass
class DecoderStats:
    """What a FrameDecoder has seen: frames delivered and candidates dropped, by reason."""

    frames: int = 0
    rejected: dict[Reject, int] = field(default_factory=lambda: {r: 0 for r in Reject})

    @property
    def dropped(self) -> int:
        """Candidates thrown away for any reason (each one is a resync at the next END)."""
        return sum(self.rejected.values())


class FrameDecoder:
    """Turns a byte stream into frames: drops whatever does not check out, resyncs on END.

    `max_payload` is the receiver's own maximum `P` (docs §4: a board uses the one it announces,
    the host MAX_PAYLOAD). Bytes before the first END, runs longer than `max_encoded(P)`
    without an END, bad escapes, truncated frames, frames declaring more than `P` bytes and
    bad CRCs are all dropped (and counted in `stats`); empty candidates (two ENDs in a row) are
    ignored silently. Frames are delivered in order.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        if not MIN_PAYLOAD <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload {max_payload} is outside {MIN_PAYLOAD}..{MAX_PAYLOAD}")
        self.max_payload = max_payload
        self._max_encoded = max_encoded(max_payload)
        self._buf = bytearray()
        self._scan = 0
        self._overflowing = False
        self.stats = DecoderStats()

    def feed(self, data: bytes) -> list[Frame]:
        """Consume `data`; return the frames it completed, oldest first."""
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        start = 0
        while (end := buf.find(END, max(start, self._scan))) >= 0:
            if self._overflowing:  # an overlong run counts once, at its END (docs §4)
                self._overflowing = False
                self.stats.rejected[Reject.OVERSIZE] += 1
            elif end > start:
                with memoryview(buf) as view:
                    self._take(bytes(view[start:end]), frames)
            start = end + 1
            self._scan = start
        del buf[:start]
        self._scan = len(buf)
        if len(buf) > self._max_encoded:
            buf.clear()
            self._scan = 0
            self._overflowing = True
        return frames

    def reset(self) -> None:
        """Forget any partial frame (what a reboot does to the receiver)."""
        self._buf.clear()
        self._scan = 0
        self._overflowing = False

    def _take(self, candidate: bytes, frames: list[Frame]) -> None:
        body = slip_unescape(candidate)
        result = Reject.GARBAGE if body is None else parse_body(body, self.max_payload)
        if isinstance(result, Reject):
            self.stats.rejected[result] += 1
        else:
            self.stats.frames += 1
            frames.append(result)
