"""Starting a board agent as a process of its own, and stopping it: the one launcher that
`--hal emulator`, the pytest plugin, the benches and the tests use.

    with launch_board(Path("dev.flash")) as board:   # python -m hal.emulator ... --pty
        machine = SerialMachine(board.url)

The agent runs with `--exit-with-parent` and a pipe from this process as its stdin: if this
process dies, even by SIGKILL, the pipe closes and the agent stops instead of serving on. Its
first stdout line ends with the port to open (the pty path, or `socket://127.0.0.1:PORT`).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hal.emulator.boards import board_command
from hal.errors import DeviceBusyError, HalError
from hal.interfaces import Closeable
from policy.text import printable

#: Seconds an agent may take to print the line naming its port.
START_TIMEOUT = 15.0
#: Seconds an agent is given to stop after its stdin closes, then after SIGTERM.
STOP_GRACE = 5.0
#: An agent's exit code when another process holds its device (the project's one policy).
BUSY_EXIT = 5


class LaunchError(HalError):
    """The agent did not start: it printed no port (its stderr, and exit code, say why)."""


def agent_command(flash: Path, transport: str = "pty", options: Sequence[str] = (),
                  board: str = "python") -> list[str]:
    """The command line of a board agent (`hal.emulator.boards`) serving `flash`;
    BoardMissing if that board is not built here."""
    where = ["--pty"] if transport == "pty" else ["--tcp", "127.0.0.1:0"]
    return [*board_command(board), "--flash", str(flash), *where, "--exit-with-parent",
            *options]


@dataclass
class LaunchedBoard(Closeable):
    """A running agent process and the URL its port is at."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)  # what it printed on stdout

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int | None:
        """Stop the agent: close its stdin (it exits on its own), then SIGTERM, then SIGKILL.
        Its exit code (None if it had to be killed)."""
        process = self.process
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        for ask in (process.terminate, process.kill):
            if process.poll() is not None:
                return process.returncode
            try:
                return process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                ask()
        process.wait()
        return None

    def close(self) -> None:
        self.stop()


def launch(command: Sequence[str], stderr_path: Path | None = None, *,
           timeout: float = START_TIMEOUT, cwd: Path | None = None) -> LaunchedBoard:
    """Start an agent `command` (one that follows the emulator's contract); its stderr goes to
    `stderr_path` (by default a temporary file of no name, so nothing is left beside the
    device and no file there is followed or overwritten). LaunchError, the agent stopped, if
    no port line comes within `timeout`; its stderr is then in the message."""
    with _stderr_file(stderr_path) as errors:
        # a session of its own: a Ctrl-C at the terminal interrupts the launcher, which then
        # stops the agent in order, instead of reaching the agent mid-request
        process = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=errors, text=True, cwd=cwd, start_new_session=True)
        lines, first = _drain_stdout(process)
        board = LaunchedBoard(process, "", lines)
        first.wait(timeout)
        if not lines or not lines[0].strip():
            early = process.poll()  # it ended by itself, rather than being stopped here
            code = board.stop()
            errors.seek(0)
            problem = errors.read().decode(errors="replace").strip()
            if code == BUSY_EXIT:  # the agent's own words: another process holds the device
                raise DeviceBusyError(problem.partition("error: ")[2] or problem)
            what = (f"exited with code {early} before it printed its port" if early is not None
                    else f"printed no port within {timeout:g} s (stopped, exit code {code})")
            raise LaunchError(f"{command[0]}: the agent {what}: "
                              f"{printable(problem[-500:], 500) or 'no message'}")
    board.url = lines[0].split()[-1]
    return board


def _stderr_file(path: Path | None) -> IO[bytes]:
    return tempfile.TemporaryFile() if path is None else path.open("w+b")


def launch_board(flash: Path, *, transport: str = "pty", options: Sequence[str] = (),
                 timeout: float = START_TIMEOUT, board: str = "python") -> LaunchedBoard:
    """Start a board agent (default: the Python one) on `flash`."""
    return launch(agent_command(flash, transport, options, board), timeout=timeout)


def _drain_stdout(process: subprocess.Popen[str]) -> tuple[list[str], threading.Event]:
    """Collect the agent's stdout lines in a daemon thread (so a chatty agent never blocks);
    the event is set at the first line, or when stdout ends without one."""
    lines: list[str] = []
    first = threading.Event()
    stdout = process.stdout
    assert stdout is not None

    def drain() -> None:
        with stdout:
            for line in stdout:
                lines.append(line)
                first.set()
        first.set()

    threading.Thread(target=drain, name="agent-stdout", daemon=True).start()
    return lines, first
