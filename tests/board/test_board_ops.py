"""§6 and §7: every opcode, every error code, which error wins, the §3.1 limits."""

from __future__ import annotations

import hashlib
import math
import struct

import pytest

from tests.board.boardlink import ERR, OP, REPLY, Link, wire

pytestmark = pytest.mark.board

SECTOR = 4096
EMPTY_SHA = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
_next_sector = [8]


def fresh_sector(board: Link) -> int:
    """A sector of the shared flash no other test uses, erased."""
    size = board.hello().flash_size
    offset = (_next_sector[0] * SECTOR) % size
    _next_sector[0] += 1
    board.erase(offset, SECTOR)
    return offset


def f64(x: float) -> bytes:
    return struct.pack("<d", x)


# -- HELLO, PING, STATS, QUERY ----------------------------------------------------------------

def test_hello_fields(request, target, start) -> None:
    agent = start()
    with agent.link() as board:
        reply = board.ok("HELLO")
        assert len(reply) == 46
        h = board.hello()
        assert h.version == 1 and 512 <= h.max_payload <= 65_600 and h.window >= 1
        assert (h.boot_count, h.last_cause) == (1, 0)
        assert h.boot_monotonic is not None
        if target.running_clock:  # QEMU's clock is read a little before it settles: within 3 s
            assert abs(h.boot_monotonic - board.monotonic()) < 3.0
        else:
            assert h.boot_monotonic == board.monotonic() == 0.0
        geometry = struct.unpack("<III", board.ok("FLASH_GEOMETRY"))
        assert (h.flash_size, h.sector_size, h.page_size) == geometry
        assert h.otp_words == struct.unpack("<I", board.ok("OTP_WORD_COUNT"))[0]
        assert h.board_flags is not None and h.board_flags & 0xFE == 0
        assert h.board_flags & 1, "every agent here has virtual clocks (§6.1)"


def test_default_geometry(request, target, start) -> None:
    if target.name == "qemu":
        pytest.skip("the QEMU tier runs with a small flash")
    agent = start()
    with agent.link() as board:
        h = board.hello()
        assert (h.flash_size, h.sector_size, h.page_size, h.otp_words) == (16 << 20, 4096, 256, 64)
        assert h.max_payload == 65_600
    assert (agent.flash.stat().st_size, agent.flash.with_suffix(".flash.otp").stat().st_size) == (
        16 << 20, 256)


def test_hello_with_payload_is_bad_length(board: Link) -> None:
    board.fails("HELLO", b"x", "BAD_LENGTH")


def test_ping_echoes(board: Link) -> None:
    data = bytes(range(256)) * 3
    assert board.ok("PING", data) == data
    assert board.ok("PING", b"") == b""


def test_ping_limit(request, target, board: Link) -> None:
    p = board.hello().max_payload
    assert len(board.ok("PING", b"\xa5" * (p - 3))) == p - 3
    board.fails("PING", b"\xa5" * (p - 2), "BAD_LENGTH")


def test_stats_counts(board: Link) -> None:
    received, dropped, bad_crc, dups, errors, boots = board.stats()
    board.fails("OTP_READ", b"", "BAD_LENGTH")
    after = board.stats()
    assert after[0] == received + 2 and after[4] == errors + 1 and after[5] == boots >= 1
    assert after[1:4] == (dropped, bad_crc, dups)


def test_query(board: Link) -> None:
    assert board.ok("QUERY", struct.pack("<H", 4321)) == b"\x00"
    board.fails("QUERY", b"\x01", "BAD_LENGTH")
    board.fails("QUERY", b"\x01\x00\x00", "BAD_LENGTH")
    offset = fresh_sector(board)
    seq = board.seq()
    board.ok("FLASH_PROGRAM", struct.pack("<I", offset) + b"\x00", seq=seq)
    assert board.ok("QUERY", struct.pack("<H", seq)) == bytes([1, REPLY, OP["FLASH_PROGRAM"]])
    seq = board.seq()
    err = board.fails("OTP_READ", struct.pack("<I", 1 << 30), "OUT_OF_RANGE", seq=seq)
    answer = board.ok("QUERY", struct.pack("<H", seq))
    assert answer == bytes([1, err.flags, OP["OTP_READ"]]) + err.payload


def test_query_of_large_idempotent_reply(target, board: Link) -> None:
    """§6.2: u8 1 with the whole reply, or u8 2 if the board did not keep the payload (the C
    agent keeps 40 bytes of a reply; the emulator keeps every reply, §5)."""
    seq = board.seq()
    data = bytes(range(200)) * 2
    board.ok("PING", data, seq=seq)
    answer = board.ok("QUERY", struct.pack("<H", seq))
    if target.name == "python":
        assert answer == bytes([1, REPLY, OP["PING"]]) + data
    else:
        assert answer == bytes([2, REPLY, OP["PING"]])
        dups = board.stats()[3]
        board.send(wire(OP["PING"], seq, data))       # the re-sent request: carried out again
        again = board.next_reply()
        assert (again.seq, again.payload) == (seq, data)
        assert board.stats()[3] == dups + 1


def test_unknown_opcodes(board: Link) -> None:
    for opcode in (0x00, 0x05, 0x15, 0x63, 0x70, 0x71, 0xFF):
        board.fails(opcode, b"\x00" * 3, "UNKNOWN_OPCODE")


# -- flash --------------------------------------------------------------------------------------

def test_flash_program_read_hash(board: Link) -> None:
    offset = fresh_sector(board)
    assert board.read(offset, 64) == b"\xff" * 64
    data = bytes((i * 7) & 0xFF for i in range(700))   # crosses pages (256 bytes)
    board.program(offset + 100, data)
    assert board.read(offset + 100, 700) == data
    whole = b"".join(board.read(offset + at, 1024) for at in range(0, SECTOR, 1024))
    digest = board.ok("FLASH_HASH", struct.pack("<II", offset, SECTOR))
    assert digest == hashlib.sha256(whole).digest()


def test_program_only_clears_bits(board: Link) -> None:
    offset = fresh_sector(board)
    board.program(offset, b"\x0f\xf0")
    board.program(offset, b"\x0e\x00")           # 1 -> 0 only: fine
    assert board.read(offset, 2) == b"\x0e\x00"
    board.fails("FLASH_PROGRAM", struct.pack("<I", offset) + b"\x0f", "FLASH_RULE")
    # A request that breaks the rule anywhere changes nothing, not even its good part.
    board.program(offset + 700, b"\x00")
    board.fails("FLASH_PROGRAM", struct.pack("<I", offset + 100) + b"\x00" * 600 + b"\x01",
                "FLASH_RULE")
    assert board.read(offset, 2) == b"\x0e\x00"
    assert board.read(offset + 100, 600) == b"\xff" * 600


def test_erase(board: Link) -> None:
    offset = fresh_sector(board)
    board.program(offset, b"\x00" * 16)
    board.fails("FLASH_ERASE", struct.pack("<II", offset + 1, SECTOR), "FLASH_RULE")
    board.fails("FLASH_ERASE", struct.pack("<II", offset, SECTOR - 1), "FLASH_RULE")
    assert board.read(offset, 16) == b"\x00" * 16
    board.erase(offset, SECTOR)
    assert board.read(offset, 16) == b"\xff" * 16


def test_flash_out_of_range(board: Link) -> None:
    size = board.hello().flash_size
    for op in ("FLASH_READ", "FLASH_ERASE", "FLASH_HASH"):
        board.fails(op, struct.pack("<II", size - 256, 512), "OUT_OF_RANGE")
        board.fails(op, struct.pack("<II", 0xFFFFFF00, 0x200), "OUT_OF_RANGE")  # wraps in u32
        board.fails(op, struct.pack("<II", size + 1, 0), "OUT_OF_RANGE")
    board.fails("FLASH_PROGRAM", struct.pack("<I", size - 1) + b"\x00\x00", "OUT_OF_RANGE")
    board.fails("FLASH_PROGRAM", struct.pack("<I", 0xFFFFFFFF) + b"\x00", "OUT_OF_RANGE")


def test_flash_zero_length(board: Link) -> None:
    """§6.4: zero length is valid for all four, at any offset up to flash_size included."""
    size = board.hello().flash_size
    for offset in (0, 1, size - 1, size):
        assert board.read(offset, 0) == b""
        assert board.ok("FLASH_HASH", struct.pack("<II", offset, 0)) == EMPTY_SHA
        assert board.ok("FLASH_PROGRAM", struct.pack("<I", offset)) == b""
    assert board.ok("FLASH_ERASE", struct.pack("<II", 0, 0)) == b""
    assert board.ok("FLASH_ERASE", struct.pack("<II", size, 0)) == b""


def test_flash_erase_zero_length_unaligned(request, target, board: Link) -> None:
    size = board.hello().flash_size
    for offset in (1, size - 1):
        assert board.ok("FLASH_ERASE", struct.pack("<II", offset, 0)) == b""


def test_flash_payload_sizes(board: Link) -> None:
    for op in ("FLASH_READ", "FLASH_ERASE", "FLASH_HASH"):
        board.fails(op, b"\x00" * 7, "BAD_LENGTH")
        board.fails(op, b"\x00" * 9, "BAD_LENGTH")
    board.fails("FLASH_PROGRAM", b"\x00" * 3, "BAD_LENGTH")
    board.fails("FLASH_GEOMETRY", b"\x00", "BAD_LENGTH")


def test_read_and_program_limits(board: Link) -> None:
    p = board.hello().max_payload
    read_limit, data_limit = min(65_536, p - 3), min(65_536, p - 4)
    assert len(board.read(0, read_limit)) == read_limit
    board.fails("FLASH_READ", struct.pack("<II", 0, read_limit + 1), "BAD_LENGTH")
    if p - 4 > data_limit:   # the frame can carry more than the limit: the board refuses it
        too_much = struct.pack("<I", 0) + b"\xff" * (data_limit + 1)
        board.fails("FLASH_PROGRAM", too_much, "BAD_LENGTH")


# -- OTP ----------------------------------------------------------------------------------------

def test_otp(board: Link, shared_agent) -> None:
    words = struct.unpack("<I", board.ok("OTP_WORD_COUNT"))[0]
    index = words - 1
    before = struct.unpack("<I", board.ok("OTP_READ", struct.pack("<I", index)))[0]
    board.ok("OTP_BLOW", struct.pack("<II", index, 0x0000_0101))
    board.ok("OTP_BLOW", struct.pack("<II", index, 0x8000_0100))
    board.ok("OTP_BLOW", struct.pack("<II", index, 0))
    value = struct.unpack("<I", board.ok("OTP_READ", struct.pack("<I", index)))[0]
    assert value == before | 0x8000_0101
    board.fails("OTP_READ", struct.pack("<I", words), "OUT_OF_RANGE")
    board.fails("OTP_BLOW", struct.pack("<II", words, 1), "OUT_OF_RANGE")
    board.fails("OTP_READ", b"\x00" * 3, "BAD_LENGTH")
    board.fails("OTP_BLOW", b"\x00" * 4, "BAD_LENGTH")
    board.fails("OTP_WORD_COUNT", b"\x00", "BAD_LENGTH")
    otp = (shared_agent.flash.parent / (shared_agent.flash.name + ".otp")).read_bytes()
    assert len(otp) == 4 * words
    assert struct.unpack_from("<I", otp, 4 * index)[0] == value


# -- errors: which wins (§7) --------------------------------------------------------------------

def test_error_precedence(board: Link) -> None:
    size = board.hello().flash_size
    board.send(wire(0x63, 77, b"", version=3))
    assert board.next_reply().error == ERR["BAD_VERSION"]            # version before opcode
    board.fails(0x66, b"\x00" * 9, "UNKNOWN_OPCODE")                  # opcode before length
    board.fails("FLASH_READ", struct.pack("<III", size, 1, 0), "BAD_LENGTH")
    board.fails("FLASH_ERASE", struct.pack("<II", size - 1, 4096), "OUT_OF_RANGE")  # before rule
    board.fails("OTP_BLOW", struct.pack("<II", 1 << 20, 1), "OUT_OF_RANGE")
    board.fails("RESET_REQUEST", b"\x00\x00", "BAD_LENGTH")            # length before value
    board.fails("WATCHDOG_START", f64(-1.0)[:4], "BAD_LENGTH")
    board.fails("CLOCK_SLEEP", b"", "BAD_LENGTH")
    board.fails("CONSOLE_LINES", b"", "BAD_LENGTH")


def test_read_limit_before_range(request, target, board: Link) -> None:
    h = board.hello()
    board.fails("FLASH_READ", struct.pack("<II", h.flash_size, min(65_536, h.max_payload - 3) + 1),
                "BAD_LENGTH")


def test_console_log_limit_before_utf8(board: Link) -> None:
    p = board.hello().max_payload
    limit = min(61_440, p)
    if limit == p:
        pytest.skip("a frame cannot carry more than the limit on this board")
    board.fails("CONSOLE_LOG", b"\xff" * (limit + 1), "BAD_LENGTH")


# -- clocks and console text (no reboot) --------------------------------------------------------

def test_sleep_and_timeout_arguments(board: Link) -> None:
    for bad in (-1.0, -1e-9, math.nan, math.inf, -math.inf):
        board.fails("CLOCK_SLEEP", f64(bad), "BAD_ARGUMENT")
    for bad in (0.0, -0.5, math.nan, math.inf):
        board.fails("WATCHDOG_START", f64(bad), "BAD_ARGUMENT")
    for cause in (4, 0xFF):
        board.fails("RESET_REQUEST", bytes([cause]), "BAD_ARGUMENT")
    assert board.stats()[5] == board.hello().boot_count  # nothing rebooted


def test_reset_cause_power_on_refused(request, target, board: Link) -> None:
    boots = board.hello().boot_count
    board.fails("RESET_REQUEST", b"\x00", "BAD_ARGUMENT")
    assert board.hello().boot_count == boots


def test_console_log_text_rules(board: Link) -> None:
    board.fails("CONSOLE_LOG", b"\xc3\x28", "BAD_ARGUMENT")       # not UTF-8
    board.fails("CONSOLE_LOG", b"\xed\xa0\x80", "BAD_ARGUMENT")   # a surrogate
    board.fails("CONSOLE_LOG", b"\xc0\xaf", "BAD_ARGUMENT")       # overlong
    assert board.ok("CONSOLE_LOG", "grüße ✓".encode()) == b""

