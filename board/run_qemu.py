#!/usr/bin/env python3
"""Serve the C board agent on QEMU's ast1030-evb with the emulator's command line.

    run_qemu.py --flash PATH (--pty | --tcp 127.0.0.1:PORT) [--size N --sector-size N
                --page-size N --otp-words N --max-payload N --window N --exit-with-parent]

The first stdout line ends with the port to open (a pty path, or socket://127.0.0.1:PORT).
The firmware reaches the device files through semihosting: FLASH and FLASH.otp are checked
and created here (same rules as the emulator), FLASH.reset and FLASH.clock are written by the
firmware; on exit this launcher brings FLASH.clock up to the time that ran meanwhile (the
board's clock runs on its own). QEMU runs with PR_SET_PDEATHSIG, and is stopped by pid when
this launcher stops, so no QEMU outlives it. Stdlib only.

Exit codes: 0 stopped (SIGTERM, SIGINT, end of stdin with --exit-with-parent), 1 runtime
error (QEMU failed), 2 bad usage or an unusable device file (one line on stderr).
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import os
import re
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIRMWARE = HERE / "build" / "qemu" / "board-agent.elf"
FIRMWARE_MAX_PAYLOAD = 4096          # the firmware's receive buffer (BOARD_PAYLOAD_CAPACITY)
DEFAULT_WALL = 1738368000.0          # 2025-02-01T00:00:00Z
PR_SET_PDEATHSIG = 1


class Usage(Exception):
    """Bad usage or an unusable device file: exit 2."""


class Stop(Exception):
    """SIGTERM or SIGINT: stop QEMU, exit 0 (raised from the handler, so no wait blocks it)."""


def on_signal(_number: int, _frame: object) -> None:
    raise Stop


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise Usage(message)


def positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="run_qemu.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--flash", required=True, type=Path)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true")
    where.add_argument("--tcp", metavar="127.0.0.1:PORT")
    p.add_argument("--size", type=positive, default=16 << 20)
    p.add_argument("--sector-size", type=positive, default=4096)
    p.add_argument("--page-size", type=positive, default=256)
    p.add_argument("--otp-words", type=positive, default=64)
    p.add_argument("--max-payload", type=int, default=FIRMWARE_MAX_PAYLOAD)
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--exit-with-parent", action="store_true")
    args = p.parse_args(argv)
    if args.size >= 1 << 32 or args.size % args.sector_size or args.sector_size % args.page_size:
        raise Usage("bad geometry: sectors must divide the flash and pages the sectors")
    if args.otp_words > 1 << 20:
        raise Usage("--otp-words must be 1..1048576")
    if not 512 <= args.max_payload <= FIRMWARE_MAX_PAYLOAD:
        raise Usage(f"--max-payload must be 512..{FIRMWARE_MAX_PAYLOAD} for this firmware")
    if not 1 <= args.window <= 16:
        raise Usage("--window must be 1..16")
    if args.tcp is not None:
        args.tcp = loopback(args.tcp)
    return args


def loopback(spec: str) -> tuple[str, int]:
    host, _, port = spec.rpartition(":")
    try:
        number = int(port)
        address = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
    except ValueError as error:
        raise Usage(f"--tcp wants 127.0.0.1:PORT, not {spec}") from error
    if not address.is_loopback or address.version != 4:
        raise Usage(f"--tcp serves on a loopback address only, not {host}")
    if not 0 <= number <= 65535:
        raise Usage(f"--tcp port must be 0..65535: {port}")
    return str(address), number


def check_file(path: Path, size: int, what: str) -> bool:
    """An existing file must be regular and 0 or `size` bytes. True if it must be filled."""
    if not path.exists():
        return True
    if not path.is_file():
        raise Usage(f"{what} {path} is not a regular file")
    have = path.stat().st_size
    if have not in (0, size):
        raise Usage(f"{what} {path} is {have} bytes, not {size}")
    return have == 0


def read_clock(path: Path) -> float:
    if not path.exists():
        return DEFAULT_WALL
    try:
        text = path.read_text().strip().replace("Z", "+00:00")
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OSError) as error:
        raise Usage(f"clock file {path} does not hold an ISO 8601 time") from error


def side(flash: Path, suffix: str) -> Path:
    return flash.with_name(flash.name + suffix)


def prepare_files(args: argparse.Namespace) -> float:
    """Checks everything first (nothing created on a refusal), then creates what is missing."""
    flash = args.flash.resolve()
    if not flash.parent.is_dir():
        raise Usage(f"no such folder: {flash.parent}")
    fill_flash = check_file(flash, args.size, "flash file")
    fill_otp = check_file(side(flash, ".otp"), 4 * args.otp_words, "fuse file")
    wall = read_clock(side(flash, ".clock"))
    if fill_flash:
        with flash.open("wb") as f:
            block = b"\xff" * (1 << 16)
            for done in range(0, args.size, len(block)):
                f.write(block[: min(len(block), args.size - done)])
    if fill_otp:
        side(flash, ".otp").write_bytes(bytes(4 * args.otp_words))
    return wall


def firmware_args(args: argparse.Namespace, wall: float) -> str:
    """The semihosting command line: key=value words, the path percent-encoded."""
    words = {
        "flash": urllib.parse.quote(str(args.flash.resolve()), safe="/._-"),
        "size": args.size, "sector": args.sector_size, "page": args.page_size,
        "otp": args.otp_words, "payload": args.max_payload, "window": args.window,
        "session": secrets.randbits(32), "wall": round(wall * 1_000_000),
    }
    line = " ".join(f"{k}={v}" for k, v in words.items())
    return "board-agent " + line


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """In the child: SIGKILL when the launcher dies, whatever way it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(1)


def start_qemu(args: argparse.Namespace, wall: float) -> tuple[subprocess.Popen[bytes], str]:
    qemu = shutil.which("qemu-system-arm")
    if qemu is None or not FIRMWARE.exists():
        raise RuntimeError("qemu-system-arm or the firmware is missing (make -C board qemu)")
    if args.tcp is None:
        chardev = "pty,id=line"
    else:
        host, port = args.tcp
        port = port or free_port(host)
        chardev = f"socket,id=line,host={host},port={port},server=on,wait=off"
    semihosting = "enable=on,target=native,arg=" + firmware_args(args, wall).replace(",", ",,")
    argv = [qemu, "-M", "ast1030-evb", "-nodefaults", "-display", "none", "-monitor", "none",
            "-chardev", chardev, "-serial", "chardev:line", "-kernel", str(FIRMWARE),
            "-semihosting-config", semihosting]
    # QEMU 7.2 reports the pty ("char device redirected to /dev/pts/N") on stdout.
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=die_with_parent)
    if args.tcp is not None:
        wait_listening(proc, host, port)
        return proc, f"socket://{host}:{port}"
    assert proc.stdout is not None
    line = first_line(proc, timeout=10.0)
    match = re.search(r"(/dev/pts/\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"QEMU did not open a pty: {line.strip() or proc.wait()}")
    return proc, match.group(1)


def first_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """QEMU's first stdout line, waiting at most `timeout` s (never blocks for good)."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout.fileno(), selectors.EVENT_READ)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data and time.monotonic() < deadline:
        if selector.select(timeout=max(0.0, deadline - time.monotonic())):
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


def wait_listening(proc: subprocess.Popen[bytes], host: str, port: int) -> None:
    """Until QEMU's socket takes a connection (the probe's close leaves it listening)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"QEMU did not listen on {host}:{port}")


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


def bring_clock_forward(flash: Path, wall_at_start: float, started: float) -> None:
    """The board's clock ran on its own: FLASH.clock = last written time + elapsed since."""
    path = side(flash.resolve(), ".clock")
    now = time.time()
    try:
        written = datetime.fromisoformat(path.read_text().strip()).timestamp()
        since = path.stat().st_mtime if path.stat().st_mtime >= started else started
    except (OSError, ValueError):
        written, since = wall_at_start, started
    wall = written + max(0.0, now - since)
    path.write_text(datetime.fromtimestamp(wall, UTC).isoformat() + "\n")


def serve(args: argparse.Namespace) -> int:
    wall = prepare_files(args)
    started = time.time()
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, where = start_qemu(args, wall)
        if args.tcp is None:
            hold_pty(where)   # stays open until this launcher exits
        print(f"board-agent (qemu ast1030-evb) serving on {where}", flush=True)
        return watch(proc, args.exit_with_parent)
    except Stop:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if proc is not None:
            stop_qemu(proc)
            bring_clock_forward(args.flash, wall, started)


def watch(proc: subprocess.Popen[bytes], with_parent: bool) -> int:
    """Waits for a stop: the end of stdin, or QEMU's own end (exit 1); a signal raises Stop."""
    selector = selectors.DefaultSelector()
    if with_parent:
        selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            print(f"run_qemu.py: QEMU stopped ({proc.returncode}): {err[-300:]}", file=sys.stderr)
            return 1
        for _key, _ in selector.select(timeout=0.2):
            if not os.read(sys.stdin.fileno(), 4096):
                return 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        args = parse_args(argv)
        return serve(args)
    except Usage as error:
        print(f"run_qemu.py: {error}", file=sys.stderr)
        return 2
    except Stop:
        return 0
    except (RuntimeError, OSError) as error:
        print(f"run_qemu.py: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
