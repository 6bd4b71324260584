#!/usr/bin/env python3
"""Serve the C board agent on QEMU's ast1030-evb with the emulator's command line.

    run_qemu.py --flash PATH (--pty | --tcp 127.0.0.1:PORT) [--size N --sector-size N
                --page-size N --otp-words N --max-payload N --window N --wait SECONDS
                --at DATETIME --exit-with-parent]

The first stdout line ends with the port to open (a pty path, or socket://127.0.0.1:PORT).

This launcher is the board's power switch. Before anything else it takes the device's lock
(an exclusive flock on FLASH, covering FLASH.otp, FLASH.reset and FLASH.clock), waiting up to
--wait seconds for another process to let go; QEMU inherits the locked descriptor, so the
device stays locked for as long as either runs. Then it checks and creates the device files
(the emulator's rules), records the power-up (POWER_ON in FLASH.reset) and opens the port
(QEMU's pty, or a loopback socket it listens on and hands to QEMU) before it prints the port.
The firmware reaches the files through semihosting and writes FLASH.reset and FLASH.clock
(the clock beside it, then renamed over it); on exit this launcher brings FLASH.clock up to the
time that ran meanwhile (the board's clock runs on its own), written the same way. QEMU runs
with PR_SET_PDEATHSIG and is stopped by pid when this launcher stops, so no QEMU outlives it.
Stdlib only.

Exit codes (the project's, policy/cli.py): 0 stopped by SIGTERM or SIGINT, or (with
--exit-with-parent) at the end of stdin; 2 bad usage, or a device file that cannot be used
(nothing is created); 4 the port cannot be opened or fails, or QEMU fails (files made for a new
device are removed if it never served); 5 another process holds the device; 130 SIGTERM or
SIGINT before serving. Errors are one line on stderr: `run_qemu: error: TEXT`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import math
import os
import re
import secrets
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

PROG = "run_qemu"
HERE = Path(__file__).resolve().parent
FIRMWARE = HERE / "build" / "qemu" / "board-agent.elf"
FIRMWARE_MAX_PAYLOAD = 4096          # the firmware's receive buffer (BOARD_PAYLOAD_CAPACITY)
FIRMWARE_PATH_MAX = 511              # bytes of FLASH's absolute path (qemu/options.h)
DEFAULT_WALL = 1738368000.0          # 2025-02-01T00:00:00Z
CAUSES = ("POWER_ON", "SOFTWARE", "WATCHDOG", "POWER_LOSS")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")   # as the emulator (policy/network.py)
READY_LINE = b"board: ready"            # a firmware's word on QEMU's stderr (qemu/ast1030.h)
FIRMWARE_ERROR = b"board-agent: error: "  # ... or why it cannot start
LOCK_POLL = 0.05
START_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1

EPILOG = """\
exit codes:
  0    stopped by SIGTERM or SIGINT, or (--exit-with-parent) at the end of stdin
  2    bad usage, or a flash or state file that cannot be used: nothing is created
  4    the port cannot be opened or fails, or QEMU fails
  5    another process holds the flash file
  130  interrupted (SIGTERM or SIGINT) before serving: nothing is created
errors are one line on stderr.
"""


class Failure(Exception):
    """One line on stderr and the exit code `code`."""

    code = 1


class BadInput(Failure):
    """Bad usage, or a device file that cannot be used."""

    code = 2


class Hardware(Failure):
    """The port cannot be opened or fails; QEMU fails."""

    code = 4


class Busy(Failure):
    """Another process holds the device."""

    code = 5


class Stop(BaseException):
    """SIGTERM or SIGINT arrived (raised by `Signals.check`, at a point where it is safe)."""


class Signals:
    """SIGTERM and SIGINT noted, never raised from the handler (an exception raised at any
    bytecode can leave a lock of `subprocess` held, and the stop that follows hangs): a flag,
    and a byte on `wakeup` that ends any select it is registered in."""

    def __init__(self) -> None:
        self.arrived = False
        self.wakeup, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._note)

    def _note(self, _number: int, _frame: object) -> None:
        self.arrived = True

    def check(self) -> None:
        """Stop if a signal has arrived."""
        if self.arrived:
            raise Stop


SIGNALS: Signals | None = None


def check_signals() -> None:
    if SIGNALS is not None:
        SIGNALS.check()


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        raise BadInput(f"{message} (see --help)")


def iso_datetime(text: str) -> datetime:
    """As policy.cli.iso_datetime: an ISO 8601 date or date-time, UTC unless it names a zone."""
    try:
        value = datetime.fromisoformat(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or date-time"
                                         ) from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=EPILOG,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flash", required=True, type=Path, help="flash file (created if absent)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    where.add_argument("--tcp", metavar="127.0.0.1:PORT",
                       help="listen on a loopback TCP port (0: any free port)")
    p.add_argument("--size", type=int, default=16 << 20, help="flash size, bytes")
    p.add_argument("--sector-size", type=int, default=4096)
    p.add_argument("--page-size", type=int, default=256)
    p.add_argument("--otp-words", type=int, default=64, help="fuse words, 1..1048576")
    p.add_argument("--max-payload", type=int, default=FIRMWARE_MAX_PAYLOAD, metavar="N",
                   help=f"the P announced in HELLO, 512..{FIRMWARE_MAX_PAYLOAD}")
    p.add_argument("--window", type=int, default=1, metavar="N", help="1..16 (default 1)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for a device another process holds (default: refuse "
                        "at once, exit 5)")
    p.add_argument("--at", type=iso_datetime, metavar="DATETIME",
                   help="set the device's wall clock first (ISO 8601; UTC unless it names a "
                        "zone); otherwise it goes on from FLASH.clock")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="stop when stdin (a pipe the launcher keeps open) reaches its end")
    p.add_argument("--firmware", type=Path, default=FIRMWARE, metavar="ELF",
                   help="run this firmware for the ast1030-evb instead of the agent (default "
                        "%(default)s; build/qemu/echo.elf is bench/board.py's raw echo)")
    args = p.parse_args(argv)
    size, sector, page = args.size, args.sector_size, args.page_size
    if min(size, sector, page) <= 0 or sector % page or size % sector:
        raise BadInput(f"bad flash geometry: size {size}, sector {sector}, page {page} (each "
                       "must be positive and divide the one before)")
    if size > 0xFFFF_FFFF:
        raise BadInput(f"--size {size}: the protocol carries at most {0xFFFF_FFFF} bytes")
    if not 1 <= args.otp_words <= 1 << 20:
        raise BadInput(f"--otp-words {args.otp_words}: expected 1..{1 << 20}")
    if not 512 <= args.max_payload <= FIRMWARE_MAX_PAYLOAD:
        raise BadInput(f"--max-payload {args.max_payload}: expected 512..{FIRMWARE_MAX_PAYLOAD}"
                       " for this firmware")
    if not 1 <= args.window <= 16:
        raise BadInput(f"--window {args.window}: expected 1..16")
    if not (math.isfinite(args.wait) and args.wait >= 0):
        raise BadInput(f"--wait {args.wait}: expected seconds >= 0")
    if args.tcp is not None:
        args.tcp = tcp_address(args.tcp)
    if args.exit_with_parent:
        check_stdin_can_close()
    if args.firmware != FIRMWARE and not args.firmware.is_file():
        raise BadInput(f"--firmware {args.firmware}: no such file")
    if args.flash.name in ("", ".."):
        raise BadInput(f"--flash {str(args.flash)!r}: names a folder, not a flash file")
    if len(os.fsencode(args.flash.absolute())) > FIRMWARE_PATH_MAX:
        raise BadInput(f"{args.flash}: the firmware takes a path of at most "
                       f"{FIRMWARE_PATH_MAX} bytes")
    return args


def tcp_address(text: str) -> tuple[str, int]:
    """HOST:PORT as the emulator reads it (HOST loopback; empty is 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise BadInput(f"--tcp {text!r}: expected HOST:PORT, e.g. 127.0.0.1:5555")
    if int(port) > 0xFFFF:
        raise BadInput(f"--tcp {text!r}: the port must be 0..65535")
    host = host.strip("[]") or "127.0.0.1"
    if host not in LOOPBACK_HOSTS:
        raise BadInput(f"--tcp {text!r}: the agent listens on loopback only "
                       f"({', '.join(LOOPBACK_HOSTS)})")
    return host, int(port)


def check_stdin_can_close() -> None:
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        raise BadInput("--exit-with-parent: stdin is closed; pass a pipe") from None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0)):
        raise BadInput("--exit-with-parent: stdin must be a pipe (or a socket or terminal) the "
                       "parent keeps open; a file or /dev/null would end at once")


def side(flash: Path, suffix: str) -> Path:
    return flash.with_name(flash.name + suffix)


class Device:
    """The device files, locked: FLASH, FLASH.otp, FLASH.reset, FLASH.clock."""

    def __init__(self, flash: Path, size: int, otp_words: int) -> None:
        self.flash, self.size, self.otp_words = flash, size, otp_words
        self.lock_fd: int | None = None
        self.made: list[Path] = []

    def check(self) -> None:
        """The emulator's checks that open nothing (nothing is created on a refusal)."""
        sizes = {self.flash: self.size, side(self.flash, ".otp"): 4 * self.otp_words,
                 side(self.flash, ".reset"): None}
        for path, expected in sizes.items():
            if not (path.exists() or path.is_symlink()):
                continue
            if not path.is_file():
                raise BadInput(f"{path}: not a regular file")
            if not os.access(path, os.R_OK | os.W_OK):
                raise BadInput(f"{path}: cannot be read and written")
            actual = path.stat().st_size
            if expected is not None and actual not in (0, expected):
                raise BadInput(f"{path}: holds {actual} bytes, {expected} expected")
        if not self.flash.exists():
            folder = self.flash.parent
            if not folder.is_dir():
                raise BadInput(f"{self.flash}: no directory {folder} to create it in")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise BadInput(f"{self.flash}: cannot create files in {folder}")

    def open(self, wait: float) -> float:
        """Lock FLASH (creating it), check the state files, fill new files; the wall time
        FLASH.clock holds. On a failure after the lock, the files made are removed."""
        try:
            fd = os.open(self.flash, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            made_flash = True
        except FileExistsError:
            fd = os.open(self.flash, os.O_RDWR | os.O_CLOEXEC)
            made_flash = False
        self.lock_fd = fd
        self._lock(wait)   # a FLASH made here and then locked by another is never removed
        if made_flash:
            self.made.append(self.flash)
        self.made += [p for p in (side(self.flash, s) for s in (".otp", ".reset", ".clock"))
                      if not p.exists()]
        try:
            wall = self._read_clock()
            self._check_cause()
            self._fill(self.flash, self.size, b"\xff")
            self._fill(side(self.flash, ".otp"), 4 * self.otp_words, b"\x00")
            return wall
        except BaseException:
            self.discard_new()
            raise

    def _lock(self, wait: float) -> None:
        assert self.lock_fd is not None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                check_signals()
                if time.monotonic() >= deadline:
                    raise Busy(f"{self.flash}: device busy (another process is using it)"
                               ) from None
                time.sleep(LOCK_POLL)

    def _read_clock(self) -> float:
        path = side(self.flash, ".clock")
        try:
            text = path.read_bytes().decode("ascii", errors="replace").strip()
        except FileNotFoundError:
            return DEFAULT_WALL
        try:
            when: datetime | None = datetime.fromisoformat(text)
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise BadInput(f"{path}: {text[:40]!r} is not an ISO 8601 time with a time zone")
        return when.timestamp()

    def _check_cause(self) -> None:
        path = side(self.flash, ".reset")
        with contextlib.suppress(FileNotFoundError):
            name = path.read_text(encoding="ascii", errors="replace").strip()
            if name not in CAUSES:
                raise BadInput(f"{path}: {name!r} is not a reset cause")

    @staticmethod
    def _fill(path: Path, size: int, byte: bytes) -> None:
        with path.open("ab") as f:   # created if absent; an empty file is filled
            actual = f.seek(0, os.SEEK_END)
            if actual == 0:
                block = byte * (1 << 16)
                for done in range(0, size, len(block)):
                    f.write(block[: min(len(block), size - done)])
            elif actual != size:
                raise BadInput(f"{path}: holds {actual} bytes, {size} expected")

    def record_power_on(self) -> None:
        """FLASH.reset says POWER_ON (written in place, as the software machine does)."""
        fd = os.open(side(self.flash, ".reset"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            line = f"{'POWER_ON':<15}\n".encode("ascii")
            os.pwrite(fd, line, 0)
            os.ftruncate(fd, len(line))
        finally:
            os.close(fd)

    def discard_new(self) -> None:
        """Remove the files made for a device that was never served."""
        for path in self.made:
            with contextlib.suppress(OSError):
                path.unlink()
        self.made = []

    def close(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def firmware_args(args: argparse.Namespace, wall: float) -> str:
    """The semihosting command line: key=value words, the path percent-encoded."""
    words = {
        "flash": urllib.parse.quote(str(args.flash.absolute()), safe="/._-"),
        "size": args.size, "sector": args.sector_size, "page": args.page_size,
        "otp": args.otp_words, "payload": args.max_payload, "window": args.window,
        "session": secrets.randbits(32), "wall": round(wall * 1_000_000),
    }
    line = " ".join(f"{k}={v}" for k, v in words.items())
    return "board-agent " + line


def listen(host: str, port: int) -> socket.socket:
    """A listening loopback socket (QEMU serves on it); Hardware if it cannot be opened."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(1)
    except OSError as error:
        listener.close()
        raise Hardware(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return listener


def url_of(listener: socket.socket, host: str) -> str:
    port = listener.getsockname()[1]
    return f"socket://{'[' + host + ']' if ':' in host else host}:{port}"


def die_with_parent() -> None:
    """In the child: SIGKILL when the launcher dies, whatever way it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(1)


def start_qemu(args: argparse.Namespace, wall: float, lock_fd: int,
               listener: socket.socket | None) -> subprocess.Popen[bytes]:
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        raise Hardware("qemu-system-arm is not installed (make board installs it as root)")
    if not args.firmware.is_file():
        raise Hardware(f"{args.firmware}: no firmware (make -C board qemu)")
    passed = [lock_fd]   # the device stays locked while QEMU runs, even if this launcher dies
    if listener is None:
        chardev = "pty,id=line"
    else:
        chardev = f"socket,id=line,fd={listener.fileno()},server=on,wait=off"
        passed.append(listener.fileno())
    semihosting = "enable=on,target=native,arg=" + firmware_args(args, wall).replace(",", ",,")
    argv = [qemu, "-M", "ast1030-evb", "-nodefaults", "-display", "none", "-monitor", "none",
            "-chardev", chardev, "-serial", "chardev:line", "-kernel", str(args.firmware),
            "-semihosting-config", semihosting]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, pass_fds=passed, preexec_fn=die_with_parent)


def qemu_pty(proc: subprocess.Popen[bytes]) -> str:
    """The pty QEMU opened (QEMU 7.2 says "char device redirected to /dev/pts/N" on stdout)."""
    line = first_line(proc, START_TIMEOUT)
    match = re.search(r"(/dev/pts/\d+)", line)
    if not match:
        stop_qemu(proc)
        raise Hardware(f"QEMU opened no pty: {qemu_said(proc) or line.strip() or 'no message'}")
    return match.group(1)


def await_ready(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until the firmware says, on QEMU's stderr, that its UART takes bytes and it has powered
    up (Hardware if it says it cannot start, QEMU stops, or nothing comes within `timeout`):
    bytes a host sent earlier could be lost to the UART's set-up."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    if SIGNALS is not None:
        selector.register(SIGNALS.wakeup, selectors.EVENT_READ)
    said = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = selector.select(timeout=max(0.0, deadline - time.monotonic()))
        check_signals()
        if not any(key.fd == fd for key, _ in events):
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break   # QEMU's stderr ended: it stopped
        said += chunk
        for line in said.split(b"\n")[:-1]:
            if line == READY_LINE:
                return
            if line.startswith(FIRMWARE_ERROR):
                stop_qemu(proc)
                raise Hardware(line[len(FIRMWARE_ERROR):].decode(errors="replace"))
    stop_qemu(proc)
    text = " ".join(said.decode(errors="replace").split())[-300:] or "no message"
    raise Hardware(f"the firmware did not start within {timeout:g} s: {text}")


def first_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """QEMU's first stdout line, waiting at most `timeout` s (never blocks for good)."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout.fileno(), selectors.EVENT_READ)
    if SIGNALS is not None:
        selector.register(SIGNALS.wakeup, selectors.EVENT_READ)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data and time.monotonic() < deadline:
        ready = selector.select(timeout=max(0.0, deadline - time.monotonic()))
        check_signals()
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


def qemu_said(proc: subprocess.Popen[bytes]) -> str:
    """The last of what a stopped QEMU wrote on stderr, on one line."""
    if proc.poll() is None or proc.stderr is None:
        return ""
    text = proc.stderr.read().decode(errors="replace")
    return " ".join(text.split())[-300:]


def hold_pty(path: str) -> int:
    """Keeps the pty's slave open, so hosts may close and reopen it without QEMU noticing."""
    import termios
    import tty

    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd, termios.TCSANOW)
    return fd


def stop_qemu(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def save_clock(path: Path, wall: float) -> None:
    """FLASH.clock written beside it and renamed over it (hal/soft/files.py save_wall)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(datetime.fromtimestamp(wall, UTC).isoformat() + "\n", encoding="ascii")
    os.replace(temp, path)


def bring_clock_forward(flash: Path, wall_at_start: float, started: float) -> None:
    """The board's clock ran on its own: FLASH.clock = last written time + elapsed since."""
    path = side(flash, ".clock")
    now = time.time()
    try:
        written = datetime.fromisoformat(path.read_text().strip()).timestamp()
        since = path.stat().st_mtime
        if since < started:   # the file from before this run: the firmware never wrote it
            raise ValueError("stale")
    except (OSError, ValueError):
        written, since = wall_at_start, started
    save_clock(path, written + max(0.0, now - since))


def serve(args: argparse.Namespace) -> int:
    device = Device(args.flash, args.size, args.otp_words)
    device.check()
    proc: subprocess.Popen[bytes] | None = None
    listener: socket.socket | None = None
    served = False
    started = wall = 0.0
    try:
        wall = device.open(args.wait)
        if args.at is not None:
            wall = args.at.timestamp()
        started = time.time()
        if args.tcp is not None:
            listener = listen(*args.tcp)
        device.record_power_on()
        assert device.lock_fd is not None
        proc = start_qemu(args, wall, device.lock_fd, listener)
        if listener is None:
            where = qemu_pty(proc)
            hold_pty(where)   # stays open until this launcher exits
        else:
            where = url_of(listener, args.tcp[0])
            listener.close()  # QEMU has its own copy
        await_ready(proc, START_TIMEOUT)
        check_signals()
        print(f"board-agent (qemu ast1030-evb): {args.flash} served on {where}", flush=True)
        served = True
        return watch(proc, args.exit_with_parent)
    finally:
        if listener is not None:
            listener.close()
        if proc is not None:
            stop_qemu(proc)
        if served:
            bring_clock_forward(args.flash, wall, started)
        else:
            device.discard_new()
        device.close()


def watch(proc: subprocess.Popen[bytes], with_parent: bool) -> int:
    """Waits for a stop: SIGTERM or SIGINT, or the end of stdin (0); QEMU's own end (Hardware).
    """
    selector = selectors.DefaultSelector()
    if SIGNALS is not None:
        selector.register(SIGNALS.wakeup, selectors.EVENT_READ)
    if with_parent:
        selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
    while True:
        if SIGNALS is not None and SIGNALS.arrived:
            return 0
        if proc.poll() is not None:
            raise Hardware(f"QEMU stopped (exit {proc.returncode}): "
                           f"{qemu_said(proc) or 'no message'}")
        for key, _ in selector.select(timeout=0.2):
            if key.fd == sys.stdin.fileno() and stdin_ended():
                return 0


def stdin_ended() -> bool:
    """Reads what stdin holds (ignored); True at its end."""
    try:
        return not os.read(sys.stdin.fileno(), 4096)
    except BlockingIOError:
        return False
    except OSError as error:
        return error.errno != errno.EINTR


def fail(text: object, code: int) -> int:
    print(f"{PROG}: error: {' '.join(str(text).split())}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str]) -> int:
    global SIGNALS
    SIGNALS = Signals()
    try:
        return serve(parse_args(argv))
    except Failure as error:
        return fail(error, error.code)
    except Stop:
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return 130
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        return fail(f"cannot read or write{where}: {error.strerror or error}", 2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
