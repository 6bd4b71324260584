"""§6.3, §6.6, §9 and the device files: resets, the watchdog, the console, power-up."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from tests.board.boardlink import CAUSES, OP, REBOOTED, REPLY, UNSOLICITED, Link, wire

pytestmark = pytest.mark.board

START_WALL = 1738368000.0   # 2025-02-01T00:00:00Z


def banner(board: Link, newer_than: int = 1) -> tuple[int, int, int, bytes]:
    """The next BOOT_BANNER of a boot after `newer_than` (the power-up banner may or may not
    have reached us: opening the port can flush it)."""
    while True:
        frame = board.wait_unsolicited(OP["BOOT_BANNER"])
        assert frame.seq == 0 and frame.flags == UNSOLICITED
        boot_count, cause, session = struct.unpack_from("<IBI", frame.payload)
        if boot_count > newer_than:
            return boot_count, cause, session, frame.payload[9:]


def reset(board: Link, cause: int) -> None:
    reply = board.request("RESET_REQUEST", bytes([cause]))
    assert reply.flags == REPLY | REBOOTED and reply.payload == b""


def sleep(board: Link, seconds: float):
    return board.request("CLOCK_SLEEP", struct.pack("<d", seconds))


def near(target, got: float, want: float) -> bool:
    """Exact on a clock that moves only in CLOCK_SLEEP; within 3 s on one that runs."""
    return abs(got - want) < 3.0 if target.running_clock else got == want


@pytest.mark.parametrize("cause", [1, 2, 3])
def test_reset_request(start, cause: int) -> None:
    agent = start()
    with agent.link() as board:
        before = board.hello()
        sleep(board, 30.0)
        reset_at = board.monotonic()
        reset(board, cause)
        boot_count, got_cause, session, _ = banner(board)
        assert (boot_count, got_cause, session) == (2, cause, before.session)
        after = board.hello()
        assert (after.boot_count, after.last_cause, after.session) == (2, cause, before.session)
        assert after.boot_monotonic is not None and before.boot_monotonic is not None
        assert before.boot_monotonic < reset_at <= after.boot_monotonic <= board.monotonic()
        assert board.ok("RESET_LAST_CAUSE") == bytes([cause])
        assert board.stats()[5] == 2
    reset_file = agent.flash.parent / (agent.flash.name + ".reset")
    assert reset_file.read_text() == CAUSES[cause].ljust(15) + "\n"


def test_requests_after_the_rebooting_one_are_dropped(start) -> None:
    agent = start()
    with agent.link() as board:
        board.send(wire(OP["RESET_REQUEST"], 10, b"\x01") + wire(OP["PING"], 11, b"lost"))
        assert board.next_reply().flags == REPLY | REBOOTED
        assert banner(board)[0] == 2
        assert board.quiet(0.3) == [], "a request sent behind RESET_REQUEST was answered"


def test_frame_cut_by_a_reset(start) -> None:
    """§9: a boot clears the receiver; the rest of a frame cut by it is dropped, and the
    board serves on."""
    from tests.board.boardlink import END, body, escape, seal

    agent = start()
    with agent.link() as board:
        ping = escape(seal(body(OP["PING"], 20, b"cut in two" * 10)))
        board.send(wire(OP["RESET_REQUEST"], 19, b"\x01") + bytes([END]) + ping[:40])
        assert board.next_reply().flags == REPLY | REBOOTED
        assert banner(board)[0] == 2
        before = board.stats()
        board.send(ping[40:] + bytes([END]))
        assert board.quiet(0.3) == []
        assert board.stats()[1] == before[1] + 1
        assert board.ok("PING", b"whole") == b"whole"


def test_reboot_clears_the_cache(start) -> None:
    agent = start()
    with agent.link() as board:
        seq = board.seq()
        board.ok("PING", b"", seq=seq)
        reset(board, 1)
        banner(board)
        assert board.ok("QUERY", struct.pack("<H", seq)) == b"\x00"


def test_power_up_after_restart(request, target, start) -> None:
    agent = start()
    with agent.link() as board:
        first = board.hello()
        board.program(0, b"\x12\x34")
        board.ok("OTP_BLOW", struct.pack("<II", 3, 0x50))
        reset(board, 2)
        banner(board)
    assert agent.stop() == 0
    again = start(flash=agent.flash)
    with again.link() as board:
        h = board.hello()
        assert (h.boot_count, h.last_cause) == (1, 0)
        assert h.session != first.session
        assert board.ok("RESET_LAST_CAUSE") == b"\x00"
        assert board.read(0, 2) == b"\x12\x34"
        assert board.ok("OTP_READ", struct.pack("<I", 3)) == struct.pack("<I", 0x50)
        assert board.stats()[5] == 1
    reset_file = agent.flash.parent / (agent.flash.name + ".reset")
    assert reset_file.read_text() == "POWER_ON       \n"


def test_device_kept_across_restart(start) -> None:
    agent = start()
    with agent.link() as board:
        first = board.hello()
        board.program(0, b"\x12\x34")
        board.ok("OTP_BLOW", struct.pack("<II", 3, 0x50))
    assert agent.stop() == 0
    again = start(flash=agent.flash)
    with again.link() as board:
        h = board.hello()
        assert h.boot_count == 1 and h.session != first.session
        assert board.read(0, 2) == b"\x12\x34"
        assert board.ok("OTP_READ", struct.pack("<I", 3)) == struct.pack("<I", 0x50)


def test_clock_file_read_at_power_up(request, start, target, tmp_path) -> None:
    (tmp_path / "dev.flash.clock").write_text("2030-06-15T12:30:00.125000+00:00\n")
    agent = start()
    with agent.link() as board:
        want = datetime(2030, 6, 15, 12, 30, 0, 125000, tzinfo=UTC).timestamp()
        assert near(target, board.wall(), want)


def test_clocks_and_clock_file(request, start, target) -> None:
    agent = start()
    with agent.link() as board:
        assert near(target, board.wall(), START_WALL)
        assert near(target, board.monotonic(), 0.0)
        reply = sleep(board, 0.25)
        assert reply.flags == REPLY and reply.payload == b""
        assert near(target, board.monotonic(), 0.25)
        wall = board.wall()
        assert near(target, wall, START_WALL + 0.25)
        sleep(board, 86_400.0)                        # a day: virtual, takes no time
        assert near(target, board.wall(), START_WALL + 86_400.25)
    assert agent.stop() == 0
    text = (agent.flash.parent / (agent.flash.name + ".clock")).read_text()
    if not target.running_clock:
        assert text == "2025-02-02T00:00:00.250000+00:00\n"
    again = start(flash=agent.flash)
    with again.link() as board:
        stored = datetime.fromisoformat(text.strip()).timestamp()
        assert near(target, board.wall(), stored)
        assert near(target, board.monotonic(), 0.0)


@pytest.mark.parametrize("at,want", [
    ("2030-06-15T14:30:00+02:00", datetime(2030, 6, 15, 12, 30, tzinfo=UTC)),
    ("2031-01-02", datetime(2031, 1, 2, tzinfo=UTC)),
    ("2030-06-15 12:30:00.125", datetime(2030, 6, 15, 12, 30, 0, 125000, tzinfo=UTC)),
])
def test_at_sets_the_wall_clock(start, target, tmp_path, at, want) -> None:
    """--at DATETIME (ISO 8601, UTC unless it names a zone) sets the wall clock at power-up,
    over what FLASH.clock holds; FLASH.clock goes on from there."""
    (tmp_path / "dev.flash.clock").write_text("2026-01-01T00:00:00+00:00\n")
    agent = start("--at", at)
    with agent.link() as board:
        assert near(target, board.wall(), want.timestamp())
        sleep(board, 60.0)
    assert agent.stop() == 0
    saved = datetime.fromisoformat((tmp_path / "dev.flash.clock").read_text().strip())
    assert near(target, saved.timestamp(), want.timestamp() + 60.0)


def test_power_up_recorded_before_serving(start, tmp_path) -> None:
    """Starting an agent is a power-up: FLASH.reset says POWER_ON by the time it names its
    port, whatever cause the previous run ended with (§9, §10)."""
    reset_file = tmp_path / "dev.flash.reset"
    reset_file.write_text("WATCHDOG       \n")
    agent = start()
    assert reset_file.read_text() == "POWER_ON       \n"
    with agent.link() as board:
        assert board.hello().last_cause == 0


def test_clock_file_replaced_never_rewritten(start, target, tmp_path) -> None:
    """FLASH.clock is written beside it and renamed over it: the old file (seen here through a
    second link to it) is never changed in place, and no scratch file is left behind."""
    clock = tmp_path / "dev.flash.clock"
    clock.write_text("2030-01-01T00:00:00+00:00\n")
    (tmp_path / "old.clock").hardlink_to(clock)
    agent = start()
    with agent.link() as board:
        sleep(board, 3600.0)
    assert agent.stop() == 0
    assert (tmp_path / "old.clock").read_text() == "2030-01-01T00:00:00+00:00\n"
    saved = datetime.fromisoformat(clock.read_text().strip()).timestamp()
    assert near(target, saved, datetime(2030, 1, 1, 1, tzinfo=UTC).timestamp())
    # FLASH.boot: the Python board's note of its boot count (docs/serial-protocol.md); the C
    # agents keep none
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "dev.flash.boot") == [
        "dev.flash", "dev.flash.clock", "dev.flash.otp", "dev.flash.reset", "old.clock"]


def test_watchdog_bites_in_sleep(start, target) -> None:
    agent = start()
    with agent.link() as board:
        assert sleep(board, 100.0).flags == REPLY          # stopped at boot
        board.ok("WATCHDOG_KICK")                          # kick/stop on a stopped one: nothing
        board.ok("WATCHDOG_STOP")
        board.ok("WATCHDOG_START", struct.pack("<d", 10.0))
        board.monotonic()
        assert sleep(board, 5.0).flags == REPLY
        board.ok("WATCHDOG_KICK")                          # deadline: start + 15
        assert sleep(board, 9.0).flags == REPLY
        reply = sleep(board, 2.0)
        assert reply.flags == REPLY | REBOOTED
        boot_count, cause, _, _ = banner(board)
        assert (boot_count, cause) == (2, 2)
        assert board.ok("RESET_LAST_CAUSE") == b"\x02"
        assert sleep(board, 1000.0).flags == REPLY         # stopped again after the bite
        assert board.hello().boot_count == 2


def test_watchdog_bite_stops_the_clock_at_the_deadline(request, target, start) -> None:
    agent = start()
    with agent.link() as board:
        board.ok("WATCHDOG_START", struct.pack("<d", 10.0))
        start_mono = board.monotonic()
        start_wall = board.wall()
        assert sleep(board, 25.0).flags == REPLY | REBOOTED
        banner(board)
        assert near(target, board.monotonic(), start_mono + 10.0)
        assert near(target, board.wall(), start_wall + 10.0)


def test_watchdog_bites_when_sleep_reaches_deadline(start, target) -> None:
    if target.running_clock:
        pytest.skip("an exact deadline needs a clock that only CLOCK_SLEEP moves")
    agent = start()
    with agent.link() as board:
        board.ok("WATCHDOG_START", struct.pack("<d", 2.0))
        assert sleep(board, 2.0).flags == REPLY | REBOOTED
        banner(board)


def test_watchdog_restart_and_stop(start) -> None:
    agent = start()
    with agent.link() as board:
        board.ok("WATCHDOG_START", struct.pack("<d", 3.0))
        board.ok("WATCHDOG_START", struct.pack("<d", 50.0))   # restarts with the new timeout
        assert sleep(board, 10.0).flags == REPLY
        board.ok("WATCHDOG_STOP")
        assert sleep(board, 100.0).flags == REPLY
        assert board.hello().boot_count == 1


def test_watchdog_bites_while_idle_on_a_running_clock(start, target) -> None:
    if not target.running_clock:
        pytest.skip("this board's clock moves only in CLOCK_SLEEP (§6.6)")
    agent = start()
    with agent.link() as board:
        board.ok("WATCHDOG_START", struct.pack("<d", 0.3))
        assert banner(board)[:2] == (2, 2)


def lines(board: Link, first: int) -> tuple[int, int, list[bytes]]:
    p = board.ok("CONSOLE_LINES", struct.pack("<I", first))
    total, start_index, count = struct.unpack_from("<IIH", p)
    at, out = 10, []
    for _ in range(count):
        (n,) = struct.unpack_from("<H", p, at)
        out.append(p[at + 2: at + 2 + n])
        at += 2 + n
    assert at == len(p)
    return total, start_index, out


def test_console_log_and_lines(request, target, start) -> None:
    agent = start()
    with agent.link() as board:
        board.quiet(0.1)
        board.unsolicited.clear()   # the power-up banner and lines, if the open did not flush them
        total0, _, _ = lines(board, 0)
        board.ok("CONSOLE_LOG", b"one\ntwo")
        board.ok("CONSOLE_LOG", b"")
        total, start_index, got = lines(board, total0)
        assert (total, start_index) == (total0 + 3, total0)
        assert got == [b"one", b"two", b""]
        # CONSOLE_LINE frames went out after the replies, with their indexes
        sent = [board.wait_unsolicited(OP["CONSOLE_LINE"]) for _ in range(3)]
        indexes = [struct.unpack_from("<I", f.payload)[0] for f in sent]
        assert indexes == [total0, total0 + 1, total0 + 2]
        assert [f.payload[4:] for f in sent] == got
        assert lines(board, total + 5)[:2] == (total, total)
        assert lines(board, total)[2] == []


def test_console_lines_survive_reset(request, target, start) -> None:
    agent = start()
    with agent.link() as board:
        board.ok("CONSOLE_LOG", b"before the reset")
        reset(board, 1)
        banner(board)
        total, _, got = lines(board, 0)
        assert b"before the reset" in got and len(got) == total


def test_console_lines_paging_small_payload(request, target, start) -> None:
    agent = start("--max-payload", "512")
    with agent.link() as board:
        assert board.hello().max_payload == 512
        total0 = lines(board, 0)[0]
        texts = [f"line {i:03d} ".encode() + b"x" * (i % 90) for i in range(64)]
        for t in texts:
            board.ok("CONSOLE_LOG", t)
        total, _, _ = lines(board, 0)
        assert total == total0 + 64
        got: list[bytes] = []
        first, pages = total0, 0
        while first < total:
            t, start_index, page = lines(board, first)
            assert start_index == first and page and t == total
            got += page
            first = start_index + len(page)
            pages += 1
        assert got == texts and pages > 1
        # a line longer than a reply holds is cut, but comes
        board.ok("CONSOLE_LOG", b"y" * 505)
        _, _, page = lines(board, total)
        assert len(page) == 1 and 0 < len(page[0]) <= 505 and set(page[0]) == {ord("y")}


def test_console_forgets_oldest(request, target, start) -> None:
    agent = start()
    with agent.link() as board:
        for i in range(70):
            board.ok("CONSOLE_LOG", b"\n".join(b"%d" % (i * 200 + k) for k in range(200)))
        total, start_index, got = lines(board, 0)
        assert total >= 14_000 and start_index > 0 and got
