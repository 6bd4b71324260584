"""The command line every agent shares with the emulator (§10) and the device files."""

from __future__ import annotations

import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.board.boardlink import Agent, Link
from tests.board.conftest import TARGETS, _missing

pytestmark = pytest.mark.board


def run(target, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*target.argv, *args], cwd=target.cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_device_files_created(start, target) -> None:
    agent = start("--otp-words", "8")
    with agent.link() as board:
        size = board.hello().flash_size
    assert agent.stop() == 0
    flash = agent.flash.read_bytes()
    assert len(flash) == size and flash == b"\xff" * size
    side = agent.flash.parent / agent.flash.name
    assert (side.with_name(side.name + ".otp")).read_bytes() == b"\x00" * 32
    assert (side.with_name(side.name + ".reset")).read_text() == "POWER_ON       \n"


def test_flash_of_another_size_is_refused(target, tmp_path) -> None:
    flash = tmp_path / "dev.flash"
    flash.write_bytes(b"\xff" * 1000)
    result = run(target, "--flash", str(flash), "--pty", *target.extra)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "dev.flash.otp").exists()


@pytest.mark.parametrize("args", [
    ["--tcp", "0.0.0.0:0"], ["--tcp", "10.1.2.3:5000"], ["--pty", "--tcp", "127.0.0.1:0"],
    ["--pty", "--size", "1000", "--sector-size", "4096"], ["--pty", "--otp-words", "0"],
    [],
])
def test_bad_usage(target, tmp_path, args) -> None:
    result = run(target, "--flash", str(tmp_path / "f.flash"), *args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "f.flash").exists()


def test_sigterm_exits_zero(target, tmp_path) -> None:
    agent = Agent(target, tmp_path / "dev.flash", [])
    time.sleep(0.2)
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(10) == 0


def test_end_of_stdin_exits_zero(target, tmp_path) -> None:
    agent = Agent(target, tmp_path / "dev.flash", [])
    assert agent.stop() == 0


def test_tcp_loopback(target, tmp_path) -> None:
    proc = subprocess.Popen([*target.argv, "--flash", str(tmp_path / "t.flash"), "--tcp",
                             "127.0.0.1:0", "--exit-with-parent", *target.extra], cwd=target.cwd,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        assert url.startswith("socket://127.0.0.1:") and not url.endswith(":0")
        link = Link(url)
        try:
            assert link.ok("PING", b"tcp") == b"tcp"
        finally:
            link.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(10) == 0


TARGET_PAIRS = [("python", "native"), ("native", "python"), ("native", "qemu"), ("qemu", "python")]


@pytest.mark.parametrize("first,second", TARGET_PAIRS)
def test_one_device_any_agent(first, second, tmp_path) -> None:
    """The same device files served by one agent, then another: same flash, fuses, clock."""
    for name in (first, second):
        if _missing(name):
            pytest.skip(_missing(name))
    geometry = TARGETS["qemu"].extra          # every agent takes the small geometry
    flash = tmp_path / "dev.flash"
    a = Agent(TARGETS[first], flash, geometry if first != "qemu" else [])
    with a.link() as board:
        board.program(4096, b"\x5a\xa5")
        board.ok("OTP_BLOW", struct.pack("<II", 5, 0x1234))
        board.request("CLOCK_SLEEP", struct.pack("<d", 3600.5))
        wall = board.wall()
        digest = board.ok("FLASH_HASH", struct.pack("<II", 0, 262144))
    assert a.stop() == 0
    b = Agent(TARGETS[second], flash, geometry if second != "qemu" else [])
    try:
        with b.link() as board:
            assert board.read(4096, 2) == b"\x5a\xa5"
            assert board.ok("OTP_READ", struct.pack("<I", 5)) == struct.pack("<I", 0x1234)
            assert board.ok("FLASH_HASH", struct.pack("<II", 0, 262144)) == digest
            if "python" not in (first, second):   # it keeps no FLASH.clock (test_clock_file_*)
                assert abs(board.wall() - wall) < 3.0
            assert board.hello().last_cause == 0
    finally:
        assert b.stop() == 0


def test_killed_launcher_leaves_no_qemu(tmp_path) -> None:
    """run_qemu.py SIGKILLed: its QEMU goes too (PR_SET_PDEATHSIG), within 5 s."""
    import os

    if _missing("qemu"):
        pytest.skip(_missing("qemu"))
    agent = Agent(TARGETS["qemu"], tmp_path / "dev.flash", [])
    children = Path(f"/proc/{agent.proc.pid}/task/{agent.proc.pid}/children").read_text().split()
    assert len(children) == 1
    qemu = int(children[0])
    agent.proc.kill()
    agent.proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(qemu, 0)
        except ProcessLookupError:
            return
        stat = Path(f"/proc/{qemu}/stat").read_text().split()
        if stat[2] == "Z":  # a zombie awaiting its reaper is gone already
            return
        time.sleep(0.05)
    pytest.fail(f"QEMU {qemu} still runs after its launcher was killed")
