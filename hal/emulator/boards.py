"""The board agents that serve a device over the serial protocol, all with the emulator's
command-line contract (`--flash PATH (--pty | --tcp ADDR) ...`, first stdout line ending in the
port, `--exit-with-parent`, the same device files and exit codes):

    python   the Python board agent on the software machine (`python -m hal.emulator`)
    native   the C board agent built for this host with sanitizers (board/build/native)
    qemu     the C board agent as Cortex-M4 firmware under qemu-system-arm (board/run_qemu.py)

`make board` builds the C ones (docs/board.md).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from hal.errors import StateFileError

BOARDS = ("python", "native", "qemu")
REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "board" / "build" / "native" / "board-agent"
QEMU_FIRMWARE = REPO / "board" / "build" / "qemu" / "board-agent.elf"
QEMU_LAUNCHER = REPO / "board" / "run_qemu.py"


class BoardMissing(StateFileError):
    """The board agent asked for is not built here (or QEMU is not installed)."""


def missing(board: str) -> str | None:
    """Why `board` cannot be started here, or None if it can."""
    if board == "native" and not NATIVE.exists():
        return f"the native board agent is not built ({NATIVE}: run make board)"
    if board == "qemu":
        if shutil.which("qemu-system-arm") is None:
            return "qemu-system-arm is not installed (make board installs it as root)"
        if not QEMU_FIRMWARE.exists():
            return f"the QEMU firmware is not built ({QEMU_FIRMWARE}: run make board)"
    if board not in BOARDS:
        return f"no board {board!r}: expected one of {', '.join(BOARDS)}"
    return None


def board_command(board: str) -> list[str]:
    """The command that serves `board`, before its arguments; BoardMissing if it cannot."""
    reason = missing(board)
    if reason is not None:
        raise BoardMissing(reason)
    if board == "native":
        return [str(NATIVE)]
    if board == "qemu":
        return [sys.executable, str(QEMU_LAUNCHER)]
    return [sys.executable, "-m", "hal.emulator"]
