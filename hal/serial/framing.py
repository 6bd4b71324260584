"""The serial board protocol: SLIP framing, frame header, CRC, opcodes and payload layouts.

Pure functions and data only, no I/O. `docs/serial-protocol.md` is the byte-for-byte
specification; this module is its reference implementation on both sides of the line
(:mod:`hal.serial.machine` on the host, :mod:`hal.emulator.server` on the emulated board).

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

#: Largest flash data one request or reply carries (program, read).
MAX_DATA = 64 * 1024
#: Largest payload a frame may declare; anything longer is dropped by the decoder.
MAX_PAYLOAD = MAX_DATA + 64
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
#: Longest encoded frame (every byte escaped, plus both END delimiters).
MAX_ENCODED = 2 * MAX_FRAME + 2
#: Longest console line a CONSOLE_LOG request carries (UTF-8 bytes).
MAX_LINE = 60 * 1024
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


class Op(enum.IntEnum):
    """Opcodes. A reply carries the opcode of its request; unsolicited frames have their own."""

    HELLO = 0x01
    PING = 0x02
    QUERY = 0x03
    STATS = 0x04
    FLASH_GEOMETRY = 0x10
    FLASH_READ = 0x11
    FLASH_PROGRAM = 0x12
    FLASH_ERASE = 0x13
    FLASH_HASH = 0x14
    OTP_WORD_COUNT = 0x20
    OTP_READ = 0x21
    OTP_BLOW = 0x22
    RESET_REQUEST = 0x30
    RESET_LAST_CAUSE = 0x31
    CLOCK_WALL = 0x40
    CLOCK_MONOTONIC = 0x41
    CLOCK_SLEEP = 0x42
    CONSOLE_LOG = 0x50
    CONSOLE_LINES = 0x51
    WATCHDOG_START = 0x60
    WATCHDOG_KICK = 0x61
    WATCHDOG_STOP = 0x62
    BOOT_BANNER = 0x70  # unsolicited
    CONSOLE_LINE = 0x71  # unsolicited


class ErrorCode(enum.IntEnum):
    """First field of an error reply's payload."""

    BAD_VERSION = 0x01
    UNKNOWN_OPCODE = 0x02
    BAD_LENGTH = 0x03
    FLASH_RULE = 0x04
    OUT_OF_RANGE = 0x05
    BUSY = 0x06
    POWER_LOSS = 0x07
    BAD_ARGUMENT = 0x08
    INTERNAL = 0x09
    BAD_CRC = 0x0A  # never sent in a reply (a bad frame is dropped); counted in STATS


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


def parse_body(body: bytes) -> Frame | Reject:
    """Check and split an unescaped frame body; a Frame, or why it is rejected."""
    if len(body) < HEADER_SIZE + CRC_SIZE:
        return Reject.GARBAGE
    version, opcode, flags, seq, length = HEADER.unpack_from(body)
    if length > MAX_PAYLOAD:
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

    Bytes before the first END, runs longer than MAX_ENCODED without an END, bad escapes,
    truncated or oversize frames and bad CRCs are all dropped (and counted in `stats`); empty
    candidates (two ENDs in a row) are ignored silently. Frames are delivered in order.
    """

    def __init__(self) -> None:
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
            if self._overflowing:
                self._overflowing = False
            elif end > start:
                with memoryview(buf) as view:
                    self._take(bytes(view[start:end]), frames)
            start = end + 1
            self._scan = start
        del buf[:start]
        self._scan = len(buf)
        if len(buf) > MAX_ENCODED:
            buf.clear()
            self._scan = 0
            if not self._overflowing:
                self._overflowing = True
                self.stats.rejected[Reject.OVERSIZE] += 1
        return frames

    def reset(self) -> None:
        """Forget any partial frame (what a reboot does to the receiver)."""
        self._buf.clear()
        self._scan = 0
        self._overflowing = False

    def _take(self, candidate: bytes, frames: list[Frame]) -> None:
        body = slip_unescape(candidate)
        result = Reject.GARBAGE if body is None else parse_body(body)
        if isinstance(result, Reject):
            self.stats.rejected[result] += 1
        else:
            self.stats.frames += 1
            frames.append(result)


# --------------------------------------------------------------------------------------------
# Payload layouts

U8 = struct.Struct("<B")
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
F64 = struct.Struct("<d")
RANGE = struct.Struct("<II")  # offset, length: FLASH_READ, FLASH_ERASE, FLASH_HASH
OTP_BLOW = struct.Struct("<II")  # word index, bits
GEOMETRY = struct.Struct("<III")  # size, sector_size, page_size
ERROR_HEAD = struct.Struct("<H")  # code, then a UTF-8 message
QUERY_SEEN = struct.Struct("<BBB")  # seen (1), cached reply's flags, cached reply's opcode
BANNER_HEAD = struct.Struct("<IBI")  # boot count, reset cause, session; then UTF-8 text
LINES_HEAD = struct.Struct("<IH")  # total lines on the board, lines in this reply
HASH_SIZE = 32


def unpack_exact(layout: struct.Struct, payload: bytes, what: str) -> tuple[object, ...]:
    """Unpack a fixed-size payload; MalformedPayload if its size is wrong."""
    if len(payload) != layout.size:
        raise MalformedPayload(f"{what}: payload of {len(payload)} bytes, expected {layout.size}")
    return layout.unpack(payload)


def unpack_ints(layout: struct.Struct, payload: bytes, what: str) -> tuple[int, ...]:
    """`unpack_exact` for layouts made only of integers."""
    return tuple(int(v) for v in unpack_exact(layout, payload, what))  # type: ignore[call-overload]


def unpack_float(payload: bytes, what: str) -> float:
    """A single little-endian f64 payload."""
    (value,) = unpack_exact(F64, payload, what)
    assert isinstance(value, float)
    return value


def unpack_head(layout: struct.Struct, payload: bytes, what: str) -> tuple[tuple[int, ...], bytes]:
    """Unpack an integer header and return it with the rest of the payload."""
    if len(payload) < layout.size:
        raise MalformedPayload(f"{what}: payload of {len(payload)} bytes, needs {layout.size}+")
    head = tuple(int(v) for v in layout.unpack_from(payload))
    return head, payload[layout.size:]


def decode_text(raw: bytes, what: str) -> str:
    """UTF-8 text of a payload; MalformedPayload if it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"{what}: text is not UTF-8 ({exc.reason} at {exc.start})") from exc


@dataclass(frozen=True)
class Hello:
    """The HELLO reply: who the board is and what it can take."""

    LAYOUT = struct.Struct("<HIHIIIIIIBI")

    version: int
    max_payload: int
    window: int
    baud: int  # the board's line rate in bits/s, 0 if it has none (a virtual line)
    flash_size: int
    sector_size: int
    page_size: int
    otp_words: int
    boot_count: int
    last_cause: int
    session: int  # random at power-on: a new value means the board was power-cycled

    def pack(self) -> bytes:
        """The reply payload."""
        return self.LAYOUT.pack(
            self.version, self.max_payload, self.window, self.baud, self.flash_size,
            self.sector_size, self.page_size, self.otp_words, self.boot_count, self.last_cause,
            self.session)

    @classmethod
    def unpack(cls, payload: bytes) -> Hello:
        """Parse a HELLO reply payload."""
        return cls(*unpack_ints(cls.LAYOUT, payload, "HELLO reply"))


@dataclass(frozen=True)
class BoardStats:
    """The STATS reply: the board's own link counters since power-on."""

    LAYOUT = struct.Struct("<IIIIII")

    frames: int  # frames received that checked out
    dropped: int  # candidates dropped (garbage, bad CRC, bad length, oversize)
    bad_crc: int  # of which bad CRC
    duplicates: int  # requests answered from the reply cache
    errors: int  # error replies sent
    boots: int  # boots since power-on

    def pack(self) -> bytes:
        """The reply payload."""
        return self.LAYOUT.pack(self.frames, self.dropped, self.bad_crc, self.duplicates,
                                self.errors, self.boots)

    @classmethod
    def unpack(cls, payload: bytes) -> BoardStats:
        """Parse a STATS reply payload."""
        return cls(*unpack_ints(cls.LAYOUT, payload, "STATS reply"))


@dataclass(frozen=True)
class BootBanner:
    """The unsolicited BOOT_BANNER a board sends when it has (re)booted."""

    boot_count: int
    cause: int
    session: int
    text: str

    def pack(self) -> bytes:
        """The frame payload."""
        return BANNER_HEAD.pack(self.boot_count, self.cause, self.session) + self.text.encode()

    @classmethod
    def unpack(cls, payload: bytes) -> BootBanner:
        """Parse a BOOT_BANNER payload."""
        (boot_count, cause, session), text = unpack_head(BANNER_HEAD, payload, "BOOT_BANNER")
        return cls(boot_count, cause, session, decode_text(text, "BOOT_BANNER"))


def pack_error(code: ErrorCode, message: str) -> bytes:
    """An error reply payload: code, then the message (UTF-8, cut to fit)."""
    return ERROR_HEAD.pack(code) + message.encode("utf-8", "replace")[:1024]


def unpack_error(payload: bytes) -> tuple[int, str]:
    """Code and message of an error reply payload."""
    (code,), text = unpack_head(ERROR_HEAD, payload, "error reply")
    return code, text.decode("utf-8", "replace")


def pack_program(offset: int, data: bytes) -> bytes:
    """FLASH_PROGRAM request payload."""
    return U32.pack(offset) + data


def pack_lines(total: int, lines: list[str], limit: int = MAX_PAYLOAD) -> tuple[bytes, int]:
    """A CONSOLE_LINES reply holding as many of `lines` as fit in `limit` bytes.

    Returns the payload and how many lines it holds. Each line is ``u16 length, UTF-8`` (a line
    longer than 65,535 bytes is cut).
    """
    parts: list[bytes] = []
    size = LINES_HEAD.size
    for line in lines:
        raw = line.encode("utf-8", "replace")[:0xFFFF]
        if size + U16.size + len(raw) > limit:
            break
        parts.append(U16.pack(len(raw)) + raw)
        size += U16.size + len(raw)
    return LINES_HEAD.pack(total, len(parts)) + b"".join(parts), len(parts)


def unpack_lines(payload: bytes) -> tuple[int, list[str]]:
    """Total line count and the lines of a CONSOLE_LINES reply."""
    (total, count), rest = unpack_head(LINES_HEAD, payload, "CONSOLE_LINES reply")
    lines: list[str] = []
    pos = 0
    for _ in range(count):
        if pos + U16.size > len(rest):
            raise MalformedPayload("CONSOLE_LINES reply: truncated line length")
        (length,) = U16.unpack_from(rest, pos)
        pos += U16.size
        if pos + length > len(rest):
            raise MalformedPayload("CONSOLE_LINES reply: line runs past the payload")
        lines.append(decode_text(rest[pos:pos + length], "CONSOLE_LINES reply"))
        pos += length
    if pos != len(rest):
        raise MalformedPayload("CONSOLE_LINES reply: bytes after the last line")
    return total, lines
