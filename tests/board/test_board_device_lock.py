"""One device, one user: an agent serving a device holds it; another agent on the same files
exits 5 at once (or waits with --wait), as the Python emulator, the reference, does."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.board.boardlink import Agent, Link
from tests.board.conftest import TARGETS, _missing
from tests.board.test_board_cli import GEOMETRY, one_line_error, run

pytestmark = pytest.mark.board


def _device(flash: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(flash.parent.iterdir()) if p.is_file()}


def test_second_agent_is_busy(target, tmp_path) -> None:
    """While `target` serves a device, every kind of agent started on it exits 5 with the
    emulator's one line and leaves the device files as they were."""
    flash = tmp_path / "dev.flash"
    holder = Agent(target, flash, GEOMETRY if target.name != "qemu" else [])
    try:
        before = _device(flash)
        for name, second in TARGETS.items():
            if _missing(name):
                continue
            result = run(second, "--flash", str(flash), "--pty", *GEOMETRY, timeout=10)
            assert result.returncode == 5, (name, result.stderr)
            text = one_line_error(second, result.stderr)
            assert text == f"{flash}: device busy (another process is using it)", name
            assert _device(flash) == before, name
        with holder.link() as board:   # the holder serves on, untouched
            assert board.hello().boot_count == 1
    finally:
        assert holder.stop() == 0


def test_wait_for_the_device(target, tmp_path) -> None:
    """--wait: a second agent waits while the first holds the device, and serves once it stops."""
    flash = tmp_path / "dev.flash"
    holder = Agent(target, flash, GEOMETRY if target.name != "qemu" else [])
    waiter = subprocess.Popen(
        [*target.argv, "--flash", str(flash), "--pty", "--exit-with-parent", "--wait", "20",
         *GEOMETRY], cwd=target.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(0.3)
        assert waiter.poll() is None, waiter.stderr.read() if waiter.stderr else ""
        with holder.link() as board:
            board.program(0, b"\x12\x34")
        assert holder.stop() == 0
        assert waiter.stdout is not None
        port = waiter.stdout.readline().split()[-1]   # served once the holder let go
        board = Link(port)
        try:
            h = board.hello()
            assert (h.boot_count, h.last_cause) == (1, 0)
            assert board.read(0, 2) == b"\x12\x34"
        finally:
            board.close()
    finally:
        if waiter.stdin:
            waiter.stdin.close()
        assert waiter.wait(10) == 0


def test_interrupted_while_waiting(target, tmp_path) -> None:
    """SIGTERM before the agent serves: exit 130, `PROG: interrupted`, the device untouched."""
    flash = tmp_path / "dev.flash"
    holder = Agent(target, flash, GEOMETRY if target.name != "qemu" else [])
    try:
        before = _device(flash)
        waiter = subprocess.Popen(
            [*target.argv, "--flash", str(flash), "--pty", "--wait", "30", *GEOMETRY],
            cwd=target.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        time.sleep(0.3)
        waiter.send_signal(signal.SIGTERM)
        out, err = waiter.communicate(timeout=10)
        assert waiter.returncode == 130, err
        assert (out, err) == ("", f"{target.prog}: interrupted\n")
        assert _device(flash) == before
    finally:
        assert holder.stop() == 0
