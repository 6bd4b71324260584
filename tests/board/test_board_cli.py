"""The command line every agent shares with the emulator (§10) and the device files."""

from __future__ import annotations

import contextlib
import fcntl
import re
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.board.boardlink import Agent, Link
from tests.board.conftest import TARGETS, _missing

pytestmark = pytest.mark.board


#: The small geometry every agent takes here (QEMU's flash is reached through semihosting).
GEOMETRY = TARGETS["qemu"].extra


def run(target, *args: str, timeout: float = 20.0, stdin=subprocess.DEVNULL
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*target.argv, *args], cwd=target.cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=stdin)


def one_line_error(target, stderr: str) -> str:
    """The TEXT of the agent's only stderr line, `PROG: error: TEXT` (asserted)."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    match = re.fullmatch(rf"{re.escape(target.prog)}: error: (\S.*)", lines[0])
    assert match, lines[0]
    return match.group(1)


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


@pytest.mark.parametrize("args", [
    ["--tcp", "0.0.0.0:0"], ["--tcp", "10.1.2.3:5000"], ["--tcp", "127.0.0.1:70000"],
    ["--pty", "--tcp", "127.0.0.1:0"], ["--pty", "--size", "1000", "--sector-size", "4096"],
    ["--pty", "--otp-words", "0"], ["--pty", "--wait", "-1"], ["--pty", "--at", "2030-02-30"],
    ["--pty", "--no-such-option"], [],
])
def test_bad_usage(target, tmp_path, args) -> None:
    """Exit 2, one line `PROG: error: TEXT`, nothing created."""
    result = run(target, "--flash", str(tmp_path / "f.flash"), *args)
    assert result.returncode == 2, result.stderr
    one_line_error(target, result.stderr)
    assert list(tmp_path.iterdir()) == []


# -- refusals, against the Python emulator's (the reference): same exit code, same words -------

def _flock_held(flash: Path) -> contextlib.AbstractContextManager[object]:
    """FLASH locked as an agent serving it locks it (flock, exclusive)."""
    @contextlib.contextmanager
    def held():
        flash.touch()
        with flash.open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
    return held()


def _port_in_use(_flash: Path) -> contextlib.AbstractContextManager[object]:
    @contextlib.contextmanager
    def held():
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            yield listener.getsockname()[1]
    return held()


def _files(**content: str | bytes) -> Callable[[Path], contextlib.AbstractContextManager[object]]:
    """Device files made beforehand: flash, otp, reset or clock -> bytes, text or "DIR"."""
    def make(flash: Path) -> contextlib.AbstractContextManager[object]:
        for suffix, data in content.items():
            path = flash.with_name(flash.name + ("" if suffix == "flash" else "." + suffix))
            if data == "DIR":
                path.mkdir()
            elif isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data)
        return contextlib.nullcontext()
    return make


REFUSALS = {   # case: (what is there beforehand, extra arguments, exit code)
    "flash of another size": (_files(flash=b"\xff" * 1000), [], 2),
    "flash is a folder": (_files(flash="DIR"), [], 2),
    "fuse file of another size": (_files(otp=b"\0" * 3), [], 2),
    "garbled clock file": (_files(clock="next tuesday\n"), [], 2),
    "clock file without a zone": (_files(clock="2030-01-01T00:00:00\n"), [], 2),
    "garbled reset file": (_files(reset="SOMETIMES\n"), [], 2),
    "no such folder": (None, [], 2),
    "held by another process": (_flock_held, [], 5),
    "port in use": (_port_in_use, [], 4),
    "stdin that never ends": (None, ["--exit-with-parent"], 2),
}


def _refusal(target, case: str, folder: Path) -> tuple[int, str]:
    """Run `target` into REFUSALS[case] in `folder`: its exit code and error text (FOLDER for
    the folder), having checked the one line and that no file was made or changed."""
    setup, extra, _code = REFUSALS[case]
    folder.mkdir()
    flash = folder / ("missing/dev.flash" if case == "no such folder" else "dev.flash")
    with (setup or (lambda _f: contextlib.nullcontext()))(flash) as port:
        where = ["--tcp", f"127.0.0.1:{port}"] if case == "port in use" else ["--pty"]
        before = {p.name: p.read_bytes() if p.is_file() else None for p in folder.iterdir()}
        result = run(target, "--flash", str(flash), *where, *GEOMETRY, *extra, timeout=10)
        after = {p.name: p.read_bytes() if p.is_file() else None for p in folder.iterdir()}
    assert after == before, f"{target.name} left {sorted(set(after) - set(before))}"
    text = one_line_error(target, result.stderr).replace(str(folder), "FOLDER")
    return result.returncode, text.replace(f":{port}:", ":PORT:")


@pytest.fixture(scope="session")
def emulator_refusals() -> dict[str, tuple[int, str]]:
    """What the Python emulator answered to each case (its own test runs first)."""
    return {}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_as_the_emulator(target, tmp_path, case, emulator_refusals) -> None:
    """Each refusal: the exit code of the project's policy, one line `PROG: error: TEXT` with
    the emulator's TEXT, and the device files as they were (nothing made, nothing changed)."""
    got = _refusal(target, case, tmp_path / target.name)
    assert got[0] == REFUSALS[case][2], got[1]
    if target.name == "python":
        emulator_refusals[case] = got
    elif not _missing("python"):
        if case not in emulator_refusals:   # run alone (-k native): ask the reference now
            emulator_refusals[case] = _refusal(TARGETS["python"], case, tmp_path / "python")
        assert got == emulator_refusals[case]


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


@pytest.mark.parametrize(("args", "option"), [
    (["--otp-words", "0"], "--otp-words"), (["--window=0"], "--window"),
    (["--max-payload", "1"], "--max-payload"),
])
def test_a_bad_number_names_its_option(target, tmp_path, args, option) -> None:
    result = run(target, "--flash", str(tmp_path / "f.flash"), "--pty", *args)
    assert result.returncode == 2
    assert option in result.stderr, result.stderr  # not "argument 0", say
