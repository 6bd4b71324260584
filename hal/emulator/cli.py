"""The emulator's command line: ``python -m hal.emulator [--board python|native|qemu]
--flash PATH (--pty | --tcp ADDR)``. The Python board agent serves by default; `--board native`
or `--board qemu` hands the same arguments to the C board agent (`hal.emulator.boards`).

Every argument is checked before anything is created: a bad value, a port outside 0..65535, a
host that is not loopback, or a flash or state file that cannot be used is one line on stderr
and exit code 2, and no file is left behind. Files made for a new device are removed again if
the emulator fails before it serves (a port that cannot be opened: exit code 4). The device's
wall clock goes on from where FLASH.clock left it (`--at` sets it first) and is saved there
when the emulator stops. Starting the emulator is the board's power-up: its reset cause reads
POWER_ON (and FLASH.reset says so), whatever cause the previous run ended with.

With ``--exit-with-parent`` the emulator also stops when its stdin reaches end of file: a
launcher gives it a pipe as stdin and keeps the other end, so when the launcher dies (even by
SIGKILL) the pipe closes and the emulator stops instead of serving on forever.

Exit codes (the project's one policy, `policy.cli`): 0 stopped by SIGTERM or SIGINT (or, with
--exit-with-parent, at the end of stdin); 2 bad usage or input; 4 the port cannot be opened or
fails; 5 another process holds the flash file (one line on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import stat
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

from hal.emulator.agent import DEFAULT_WINDOW, MAX_WINDOW
from hal.emulator.boards import BOARDS, BoardMissing, board_command
from hal.emulator.kept_lines import CONSOLE_KEPT
from hal.emulator.line import DEFAULT_REBOOT_DELAY
from hal.emulator.line_noise import FaultRates
from hal.emulator.server import Emulator
from hal.errors import FlashError, HalError, StateFileError
from hal.interfaces import FlashGeometry
from hal.serial.framing import MAX_PAYLOAD, MIN_PAYLOAD
from hal.soft.files import device_files, sidecar
from hal.soft.flash import check_geometry
from hal.soft.machine import SoftwareMachine
from policy import errors as policy_errors
from policy.cli import ExitCode, OneLineParser, epilog, iso_datetime, run_guarded
from policy.network import LOOPBACK_HOSTS

#: Most fuse words an emulated board may have (4 bytes each in FLASH.otp).
MAX_OTP_WORDS = 1 << 20
_U32_MAX = 0xFFFF_FFFF  # flash size and baud travel as u32 in HELLO
_PORT_MAX = 0xFFFF
_PROG = "hal.emulator"

_EPILOG = epilog({
    ExitCode.OK: "stopped by SIGTERM or SIGINT, or (--exit-with-parent) at the end of stdin",
    ExitCode.BAD_INPUT: "an argument, or a flash or state file that cannot be used: nothing is "
                        "created",
    ExitCode.HARDWARE: "the port cannot be opened, or fails",
    ExitCode.BUSY: "another process holds the flash file",
}, codes=[ExitCode.OK, ExitCode.BAD_INPUT, ExitCode.HARDWARE, ExitCode.BUSY])


class BadInput(HalError, policy_errors.BadInput):
    """An argument or an input file the emulator cannot use (exit code 2)."""


@dataclass(frozen=True)
class Settings:
    """The checked command line."""

    flash: Path
    geometry: FlashGeometry
    otp_words: int
    tcp: tuple[str, int] | None  # None: serve on a pty
    baud: int  # 0: an unpaced line
    rates: FaultRates
    seed: int | None
    reboot_delay: float
    exit_with_parent: bool = False
    at: datetime | None = None  # set the wall clock first
    max_payload: int = MAX_PAYLOAD  # the P announced in HELLO
    window: int = DEFAULT_WINDOW
    wait: float = 0.0  # seconds to wait for a device another process holds


def parser() -> argparse.ArgumentParser:
    """The emulator's argument parser."""
    default = FlashGeometry()
    cli = OneLineParser(
        prog=_PROG,
        description="Serve a software machine as a board over the serial protocol. The first "
        "stdout line ends with the port to open.",
        epilog=_EPILOG,
    )
    _add_board(cli)
    cli.add_argument("--flash", type=Path, required=True, help="flash file (created if absent)")
    where = cli.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    where.add_argument("--tcp", metavar="127.0.0.1:PORT",
                       help="listen on a loopback TCP port (0: any free port)")
    cli.add_argument("--size", type=int, default=default.size, help="flash size, bytes")
    cli.add_argument("--sector-size", type=int, default=default.sector_size)
    cli.add_argument("--page-size", type=int, default=default.page_size)
    cli.add_argument("--otp-words", type=int, default=64,
                     help=f"fuse words, 1..{MAX_OTP_WORDS} (default %(default)s)")
    cli.add_argument("--baud", type=int, default=None,
                     help="pace the board's output at this many bits per second (10 bits a "
                     "byte); leave it out for an unpaced line")
    for kind in ("corrupt", "drop", "duplicate"):
        cli.add_argument(f"--{kind}", type=float, default=0.0, metavar="RATE",
                         help=f"per-byte probability to {kind} a byte (both directions)")
    cli.add_argument("--seed", type=int, default=None, help="seed for the line faults")
    cli.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="wait this long for a device another process holds (default: refuse "
                          "at once, exit 5)")
    cli.add_argument("--max-payload", type=int, default=MAX_PAYLOAD, metavar="N",
                     help=f"the largest payload the board takes or sends, announced in HELLO, "
                     f"{MIN_PAYLOAD}..{MAX_PAYLOAD} (default %(default)s); every limit follows "
                     "from it (docs/serial-protocol.md 3.1)")
    cli.add_argument("--window", type=int, default=DEFAULT_WINDOW, metavar="N",
                     help=f"requests a host may have in flight, announced in HELLO, "
                     f"1..{MAX_WINDOW} (default %(default)s)")
    cli.add_argument("--at", type=iso_datetime, metavar="DATETIME",
                     help="set the device's wall clock first (ISO 8601; UTC unless it names a "
                          "zone); otherwise it goes on from FLASH.clock")
    cli.add_argument("--reboot-delay", type=float, default=DEFAULT_REBOOT_DELAY,
                     help="seconds a rebooting board stays silent (default %(default)s)")
    cli.add_argument("--exit-with-parent", action="store_true",
                     help="stop when stdin reaches end of file: pass a pipe as stdin and keep "
                     "its other end; when the launcher dies, the emulator stops")
    return cli


def parse(argv: Sequence[str] | None) -> Settings:
    """The checked command line; BadInput for a value the emulator cannot use (argparse exits
    with code 2 itself on bad syntax)."""
    args = parser().parse_args(argv)
    if args.flash.name in ("", ".."):
        raise BadInput(f"--flash {str(args.flash)!r}: names a folder, not a flash file")
    geometry = FlashGeometry(args.size, args.sector_size, args.page_size)
    try:
        check_geometry(geometry)
    except FlashError as exc:
        raise BadInput(str(exc)) from None
    if geometry.size > _U32_MAX:
        raise BadInput(f"--size {geometry.size}: the protocol carries at most {_U32_MAX} bytes")
    if not 1 <= args.otp_words <= MAX_OTP_WORDS:
        raise BadInput(f"--otp-words {args.otp_words}: expected 1..{MAX_OTP_WORDS}")
    if args.baud is not None and not 0 < args.baud <= _U32_MAX:
        raise BadInput(f"--baud {args.baud}: expected a positive number of bits per second "
                       "(leave it out for an unpaced line)")
    if not (math.isfinite(args.reboot_delay) and args.reboot_delay >= 0):
        raise BadInput(f"--reboot-delay {args.reboot_delay}: expected seconds >= 0")
    if not MIN_PAYLOAD <= args.max_payload <= MAX_PAYLOAD:
        raise BadInput(f"--max-payload {args.max_payload}: expected {MIN_PAYLOAD}..{MAX_PAYLOAD}")
    if not 1 <= args.window <= MAX_WINDOW:
        raise BadInput(f"--window {args.window}: expected 1..{MAX_WINDOW}")
    try:
        rates = FaultRates(args.corrupt, args.drop, args.duplicate)
    except ValueError as exc:
        raise BadInput(f"line faults: {exc}") from None
    tcp = None if args.pty else tcp_address(args.tcp)
    if args.exit_with_parent:
        check_stdin_can_close()
    check_device_files(args.flash, geometry.size, args.otp_words)
    return Settings(args.flash, geometry, args.otp_words, tcp, args.baud or 0, rates,
                    args.seed, args.reboot_delay, args.exit_with_parent, args.at,
                    args.max_payload, args.window, _wait_seconds(args.wait))




def check_stdin_can_close() -> None:
    """BadInput unless stdin is a pipe, a socket or a terminal: something whose end of file
    says the parent has gone (a file or /dev/null would end at once)."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        raise BadInput("--exit-with-parent: stdin is closed; pass a pipe") from None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0)):
        raise BadInput("--exit-with-parent: stdin must be a pipe (or a socket or terminal) the "
                       "parent keeps open; a file or /dev/null would end at once")


def tcp_address(text: str) -> tuple[str, int]:
    """HOST:PORT (HOST loopback, PORT 0..65535; an empty HOST is 127.0.0.1); else BadInput."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise BadInput(f"--tcp {text!r}: expected HOST:PORT, e.g. 127.0.0.1:5555")
    if int(port) > _PORT_MAX:
        raise BadInput(f"--tcp {text!r}: the port must be 0..{_PORT_MAX}")
    host = host.strip("[]") or "127.0.0.1"
    if host not in LOOPBACK_HOSTS:
        raise BadInput(f"--tcp {text!r}: the emulator listens on loopback only "
                       f"({', '.join(LOOPBACK_HOSTS)})")
    return host, int(port)


def check_device_files(flash: Path, size: int, otp_words: int) -> None:
    """BadInput unless the device files can be opened: the flash file (and its .otp and
    .reset files beside it) each absent, or a regular file that can be read and written (the
    flash file empty or `size` bytes, the fuse file empty or 4 bytes a word); when the flash
    file is absent, its directory must take new files."""
    sizes = {flash: size, sidecar(flash, ".otp"): 4 * otp_words, sidecar(flash, ".reset"): None}
    for path, expected in sizes.items():
        if path is None or not (path.exists() or path.is_symlink()):
            continue
        if not path.is_file():
            raise BadInput(f"{path}: not a regular file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise BadInput(f"{path}: cannot be read and written")
        actual = path.stat().st_size
        if expected is not None and actual not in (0, expected):
            raise BadInput(f"{path}: holds {actual} bytes, {expected} expected")
    if not flash.exists():
        folder = flash.parent
        if not folder.is_dir():
            raise BadInput(f"{flash}: no directory {folder} to create it in")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise BadInput(f"{flash}: cannot create files in {folder}")


def run(settings: Settings) -> int:
    """Open the device and the port, print the port, serve until a signal or the end of
    stdin; ExitCode.OK. Files made for a new device go again if serving never began."""
    made = [path for path in device_files(settings.flash) if not path.exists()]
    served = False
    try:
        with _open_device(settings) as machine:
            if settings.at is not None:
                machine.clock.set_wall(settings.at)
            emulator = Emulator(machine, baud=settings.baud, rates=settings.rates,
                                seed=settings.seed, reboot_delay=settings.reboot_delay,
                                window=settings.window, max_payload=settings.max_payload)
            try:
                url = emulator.listen_tcp(*settings.tcp) if settings.tcp else emulator.open_pty()
                print(f"sphere-fwmodel emulator: {settings.flash} served on {url}", flush=True)
                served = True
                _stop_on_signals(emulator)
                if settings.exit_with_parent:
                    _stop_at_end_of_stdin(emulator)
                emulator.serve_forever()
            finally:
                emulator.close()
    finally:
        if not served:  # nothing has touched the device: leave no new file behind
            for path in made:
                path.unlink(missing_ok=True)
    return ExitCode.OK


def _wait_seconds(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise BadInput(f"--wait {value}: expected seconds >= 0")
    return value


def _open_device(settings: Settings) -> SoftwareMachine:
    try:
        return SoftwareMachine(settings.flash, settings.geometry, settings.otp_words,
                               keep_clock=True, lock_wait=settings.wait,
                               console_keep=CONSOLE_KEPT)
    except StateFileError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise BadInput(f"{exc.filename or settings.flash}: {exc.strerror}") from None


def _stop_on_signals(emulator: Emulator) -> None:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        emulator.request_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _stop_at_end_of_stdin(emulator: Emulator) -> None:
    """Watch stdin in a daemon thread; stop serving once it ends (its writer is gone)."""

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):  # whatever the parent writes is ignored
                pass
        emulator.request_stop()

    threading.Thread(target=watch, name="emulator-parent-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """The emulator CLI; returns the exit code (see the module docstring). With
    `--board native|qemu` this process becomes that board agent (exec), arguments unchanged."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_guarded(_PROG, lambda: run(parse(_serve_another_board(args))))


def _serve_another_board(args: list[str]) -> list[str]:
    """The arguments without `--board B`; for a board other than python, exec its agent."""
    board, rest = _take_board(args)
    if board == "python":
        return rest
    try:
        command = board_command(board)
    except BoardMissing as error:
        raise BadInput(str(error)) from None
    sys.stdout.flush()
    os.execv(command[0], [*command, *rest])
    raise AssertionError("exec returned")  # pragma: no cover


def _add_board(cli: argparse.ArgumentParser) -> None:
    cli.add_argument("--board", choices=BOARDS, default="python",
                     help="which board agent serves the device (default: %(default)s; native "
                          "and qemu are the C agent, built by make board: docs/board.md)")


def _take_board(args: list[str]) -> tuple[str, list[str]]:
    """`--board` as the whole parser reads it (abbreviations included), and the rest."""
    picker = OneLineParser(prog=_PROG, add_help=False)
    _add_board(picker)
    known, rest = picker.parse_known_args(args)
    return str(known.board), rest


if __name__ == "__main__":
    sys.exit(main())
