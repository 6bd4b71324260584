"""The serial board protocol's messages: opcodes, error codes and the payload layout of each
request and reply (docs/serial-protocol.md §6-§7). Pure functions and data only, no I/O."""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass

from hal.serial.framing import MAX_PAYLOAD, MIN_PAYLOAD, PROTOCOL_VERSION, MalformedPayload

#: Largest flash data one request or reply carries (program, read), whatever the board's
#: max_payload (a board with a smaller one takes less: docs §3.1).
MAX_DATA = 64 * 1024
#: Longest text a CONSOLE_LOG request carries (UTF-8 bytes), whatever the board's max_payload.
MAX_LINE = 60 * 1024
#: Longest text of an error reply (a small board's replies cut it shorter: `Limits.error_text`).
MAX_ERROR_TEXT = 1024


@dataclass(frozen=True)
class Limits:
    """Every payload limit of a board, derived from the `max_payload` (P) it announces in HELLO
    (docs §3.1). The board refuses a request over them with BAD_LENGTH; the host never sends
    one."""

    max_payload: int

    def __post_init__(self) -> None:
        if not MIN_PAYLOAD <= self.max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload {self.max_payload} is outside "
                             f"{MIN_PAYLOAD}..{MAX_PAYLOAD}")

    @property
    def reply(self) -> int:
        """Largest payload the board sends, in a reply or a frame of its own: P - 3, so that a
        QUERY reply (3 bytes, then the cached reply's payload) always fits in P. Only QUERY's
        own reply may be longer (`query_reply`)."""
        return self.max_payload - 3

    @property
    def query_reply(self) -> int:
        """Largest QUERY reply: P (3 bytes, then a reply of at most P - 3)."""
        return self.max_payload

    @property
    def program_data(self) -> int:
        """Most data bytes in one FLASH_PROGRAM (after its u32 offset)."""
        return min(MAX_DATA, self.max_payload - 4)

    @property
    def read_length(self) -> int:
        """Largest `length` of one FLASH_READ (its reply is that many bytes)."""
        return min(MAX_DATA, self.reply)

    @property
    def ping(self) -> int:
        """Largest PING payload (echoed in the reply)."""
        return self.reply

    @property
    def console_log(self) -> int:
        """Longest CONSOLE_LOG text, in UTF-8 bytes."""
        return min(MAX_LINE, self.max_payload)

    @property
    def error_text(self) -> int:
        """Longest text of an error reply (after its u16 code)."""
        return min(MAX_ERROR_TEXT, self.reply - 2)


#: The limits a host assumes until the board's first HELLO reply (docs §3.1).
FIRST_LIMITS = Limits(MIN_PAYLOAD)


class BoardFlag(enum.IntFlag):
    """Bits of HELLO's `board_flags`."""

    NONE = 0
    VIRTUAL_CLOCK = 0x01  # CLOCK_SLEEP advances the clocks at once instead of waiting


class QueryAnswer(enum.IntEnum):
    """First byte of a QUERY reply (docs §6.2)."""

    NO_ENTRY = 0  # no request with that seq carried out (since boot, HELLO or eviction)
    KEPT = 1  # carried out: flags, opcode and the reply's payload follow
    NOT_KEPT = 2  # carried out, payload not kept (idempotent only): flags, opcode follow


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


U8 = struct.Struct("<B")
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
F64 = struct.Struct("<d")
RANGE = struct.Struct("<II")  # offset, length: FLASH_READ, FLASH_ERASE, FLASH_HASH
OTP_BLOW = struct.Struct("<II")  # word index, bits
GEOMETRY = struct.Struct("<III")  # size, sector_size, page_size
ERROR_HEAD = struct.Struct("<H")  # code, then a UTF-8 message
QUERY_SEEN = struct.Struct("<BBB")  # answer (1 or 2), cached reply's flags, cached opcode
BANNER_HEAD = struct.Struct("<IBI")  # boot count, reset cause, session; then UTF-8 text
CONSOLE_LINE_HEAD = U32  # a CONSOLE_LINE frame: the line's index, then UTF-8 text
LINES_HEAD = struct.Struct("<IIH")  # lines logged since power-up, first line's index, count
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


#: The wall times a host can use: years 1 to 9999 (what a date-time holds, docs §6.1).
WALL_RANGE = (-62_135_596_800.0, 253_402_300_800.0)


def unpack_time(payload: bytes, what: str, low: float, high: float) -> float:
    """A clock reading (f64) in [low, high); MalformedPayload for NaN, an infinity or a time
    outside it (a board that sent one is not a board the host can use)."""
    value = unpack_float(payload, what)
    if not low <= value < high:  # False for NaN
        raise MalformedPayload(f"{what}: the board's clock reads {value!r}")
    return value


def unpack_head(layout: struct.Struct, payload: bytes, what: str) -> tuple[tuple[int, ...], bytes]:
    """Unpack an integer header and return it with the rest of the payload."""
    if len(payload) < layout.size:
        raise MalformedPayload(f"{what}: payload of {len(payload)} bytes, needs {layout.size}+")
    head = tuple(int(v) for v in layout.unpack_from(payload))
    return head, payload[layout.size:]


def cut_utf8(raw: bytes, limit: int) -> bytes:
    """`raw` (UTF-8) cut to at most `limit` bytes at a character boundary, so it stays UTF-8."""
    if len(raw) <= limit:
        return raw
    end = limit
    while end > 0 and raw[end] & 0xC0 == 0x80:  # a continuation byte: its character starts before
        end -= 1
    return raw[:end]


def encode_text(text: str, limit: int) -> bytes:
    """`text` as UTF-8 (unencodable characters replaced), cut to `limit` bytes as `cut_utf8`."""
    return cut_utf8(text.encode("utf-8", "replace"), limit)


def decode_text(raw: bytes, what: str) -> str:
    """UTF-8 text of a payload; MalformedPayload if it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"{what}: text is not UTF-8 ({exc.reason} at {exc.start})") from exc


@dataclass(frozen=True)
class Hello:
    """The HELLO reply: who the board is and what it can take (46 bytes; an older board's
    38-byte reply, without `boot_monotonic`, is accepted, and so is a longer one, the bytes
    after the known fields ignored: room for later fields)."""

    LAYOUT = struct.Struct("<HIHIIIIIIBIB")  # the first 38 bytes, every board sends them
    LATER = struct.Struct("<d")  # boot_monotonic, from offset 38 (a board may leave it out)
    SIZE = LAYOUT.size + LATER.size

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
    board_flags: int = BoardFlag.NONE  # BoardFlag bits
    #: CLOCK_MONOTONIC when the board last booted (its uptime is CLOCK_MONOTONIC minus this);
    #: None from an older board, whose reply stops at 38 bytes, or one that sent no finite
    #: time >= 0
    boot_monotonic: float | None = None

    @property
    def virtual_clock(self) -> bool:
        """True if the board's CLOCK_SLEEP advances its clocks at once (docs §6.1)."""
        return bool(self.board_flags & BoardFlag.VIRTUAL_CLOCK)

    @property
    def limits(self) -> Limits:
        """The payload limits that follow from `max_payload`."""
        return Limits(self.max_payload)

    def pack(self) -> bytes:
        """The reply payload (38 bytes without `boot_monotonic`, as an older board sends it)."""
        head = self.LAYOUT.pack(
            self.version, self.max_payload, self.window, self.baud, self.flash_size,
            self.sector_size, self.page_size, self.otp_words, self.boot_count, self.last_cause,
            self.session, self.board_flags)
        return head if self.boot_monotonic is None else head + self.LATER.pack(
            self.boot_monotonic)

    @classmethod
    def unpack(cls, payload: bytes) -> Hello:
        """Parse a HELLO reply payload: 38 bytes or more, `boot_monotonic` from 46 (what
        follows is ignored)."""
        head, later = unpack_head(cls.LAYOUT, payload, "HELLO reply")
        booted = None
        if len(later) >= cls.LATER.size:
            (value,) = cls.LATER.unpack_from(later)
            booted = value if math.isfinite(value) and value >= 0 else None
        (version, max_payload, window, baud, flash_size, sector_size, page_size, otp_words,
         boot_count, last_cause, session, board_flags) = head
        hello = cls(version, max_payload, window, baud, flash_size, sector_size, page_size,
                    otp_words, boot_count, last_cause, session, board_flags, booted)
        if version == PROTOCOL_VERSION:  # another version is refused as such by the link
            hello.check()
        return hello

    def check(self) -> None:
        """MalformedPayload unless the board announces what a host can work with (docs §5):
        `max_payload` in 512..65,600, a window of 1 or more, a flash geometry whose pages
        tile its sectors and sectors tile the flash."""
        problems = []
        if not MIN_PAYLOAD <= self.max_payload <= MAX_PAYLOAD:
            problems.append(f"max_payload {self.max_payload} outside {MIN_PAYLOAD}..{MAX_PAYLOAD}")
        if self.window < 1:
            problems.append("a window of 0")
        size, sector, page = self.flash_size, self.sector_size, self.page_size
        if min(size, sector, page) <= 0 or sector % page or size % sector:
            problems.append(f"flash size {size}, sector {sector}, page {page} (each must be "
                            "positive and divide the one before)")
        if problems:
            raise MalformedPayload("HELLO reply: the board announces " + "; ".join(problems))


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


def pack_error(code: ErrorCode, message: str, limit: int = MAX_ERROR_TEXT) -> bytes:
    """An error reply payload: code, then the message (UTF-8, cut to `limit` bytes)."""
    return ERROR_HEAD.pack(code) + encode_text(message, limit)


def unpack_error(payload: bytes) -> tuple[int, str]:
    """Code and message of an error reply payload."""
    (code,), text = unpack_head(ERROR_HEAD, payload, "error reply")
    return code, text.decode("utf-8", "replace")


def pack_program(offset: int, data: bytes) -> bytes:
    """FLASH_PROGRAM request payload."""
    return U32.pack(offset) + data


def pack_lines(total: int, start: int, lines: list[str], limit: int) -> tuple[bytes, int]:
    """A CONSOLE_LINES reply of at most `limit` bytes: `total` lines logged, then lines from
    index `start`, as many of `lines` (those from `start` on) as fit.

    Returns the payload and how many lines it holds. Each line is ``u16 length, UTF-8``. At
    least one line goes in if any remain: a line longer than fits (or than 65,535 bytes) is
    cut at a character boundary.
    """
    parts: list[bytes] = []
    size = LINES_HEAD.size
    for line in lines:
        room = min(0xFFFF, limit - size - U16.size)
        raw = line.encode("utf-8", "replace")
        if len(raw) > room:
            if parts:
                break
            raw = cut_utf8(raw, room)
        parts.append(U16.pack(len(raw)) + raw)
        size += U16.size + len(raw)
    return LINES_HEAD.pack(total, start, len(parts)) + b"".join(parts), len(parts)


def unpack_lines(payload: bytes) -> tuple[int, int, list[str]]:
    """Total line count, the first line's index and the lines of a CONSOLE_LINES reply."""
    (total, start, count), rest = unpack_head(LINES_HEAD, payload, "CONSOLE_LINES reply")
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
    if start + count > total:
        raise MalformedPayload(f"CONSOLE_LINES reply: lines {start}..{start + count - 1} of "
                               f"only {total}")
    return total, start, lines
