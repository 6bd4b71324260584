"""How fast the serial board link moves flash data, against the line it runs on.

    python -m bench.serial_link [--mib N] [--runs N] [--paced-kib N]

(a) Programming throughput: `SerialMachine.flash.program` into `python -m hal.emulator --pty`
    (a separate process), against a raw byte copy of the same size over the same kind of pty
    (pyserial writing the slave, a separate process reading the master, one ack byte back).
    Target: >= 0.8. Printed alongside, to tell where time goes: the slowest run of each (the
    figures swing on a shared machine), the CPU each end spends per MiB (from /proc, Linux),
    the board's work on one 64 KiB program frame measured in-process, the emulated flash's own
    programming rate, and the link to an emulator whose flash has 64 KiB pages.
(b) Line efficiency: the emulator paced at 921,600 baud (10 bits per byte); flash payload read
    through SerialMachine per second, against the line's 92,160 bytes/s. Target: >= 0.9.

Every figure is measured in this run; the best of `--runs` is kept. Exits 0 whether or not a
target is met; 1 (one line on stderr) if something could not run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import select
import sys
import tempfile
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import serial

from bench.timing import met
from hal.emulator.agent import BoardAgent
from hal.emulator.launcher import launch, launch_board
from hal.errors import HalError
from hal.interfaces import FlashGeometry
from hal.serial.framing import Flag, Frame, FrameDecoder, encode_frame
from hal.serial.machine import SerialMachine
from hal.serial.messages import MAX_DATA, Op, pack_program
from hal.soft.machine import SoftwareMachine

PROGRAM_TARGET = 0.8
LINE_TARGET = 0.9
PACED_BAUD = 921_600
MIB = 1024 * 1024
_START_TIMEOUT = 20.0


def best(runs: int, measure: Callable[[int], float]) -> float:
    """The highest of `runs` measurements (`measure(run_index)` returns bytes/s)."""
    return max(measure(run) for run in range(runs))


@dataclass(frozen=True)
class Measured:
    """Bytes/s of the best run and the spread; CPU time per MiB moved, over all runs, of this
    process and of the process at the other end of the pty (None where /proc is missing)."""

    rate: float
    slowest: float
    here_cpu_ms: float
    there_cpu_ms: float | None
    wall_ms: float
    retries: int = 0


def measure(runs: int, size: int, once: Callable[[int], None], peer: int) -> Measured:
    """Run `once(run)` `runs` times, each moving `size` bytes to process `peer`."""
    rates = []
    cpu_here, cpu_there, wall = time.process_time(), process_cpu(peer), time.perf_counter()
    for run in range(runs):
        started = time.perf_counter()
        once(run)
        rates.append(size / (time.perf_counter() - started))
    mib = runs * size / MIB
    there = process_cpu(peer)
    return Measured(
        max(rates), min(rates), (time.process_time() - cpu_here) * 1e3 / mib,
        None if there is None or cpu_there is None else (there - cpu_there) * 1e3 / mib,
        (time.perf_counter() - wall) * 1e3 / mib)


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) process `pid` has used so far; None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the raw baseline -------------------------------------------------------------------------


def raw_sink(size: int, runs: int) -> int:
    """Child process: open a pty, print the slave path, read `size` bytes per run, ack each."""
    master, slave = os.openpty()
    tty.setraw(slave)
    print(os.ttyname(slave), flush=True)
    for _ in range(runs):
        remaining = size
        while remaining:
            remaining -= len(os.read(master, min(remaining, 1 << 16)))
        os.write(master, b"k")
    os.close(slave)
    # Closing the master now could discard the last ack unread: wait for the host to hang up.
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        select.select([master], [], [], 1.0)
        try:
            if not os.read(master, 1 << 16):
                break
        except OSError:  # EIO: the host closed its end
            break
    os.close(master)
    return 0


def raw_copy_rate(size: int, runs: int) -> Measured:
    """Bytes/s of a plain pyserial write of `size` bytes through a pty to another process."""
    command = [sys.executable, "-m", "bench.serial_link", "--raw-sink", str(size), "--runs",
               str(runs)]
    with tempfile.TemporaryDirectory() as folder, \
            launch(command, Path(folder) / "sink.stderr") as sink:
        port = serial.serial_for_url(sink.url, baudrate=115_200, timeout=10)
        data = random.Random(0).randbytes(size)

        def once(_run: int) -> None:
            port.write(data)
            if port.read(1) != b"k":
                raise HalError("the raw sink did not acknowledge")

        try:
            return measure(runs, size, once, sink.pid)
        finally:
            port.close()


# --- through the link -------------------------------------------------------------------------


def program_rate(flash: Path, size: int, runs: int, *extra: str) -> Measured:
    """Bytes/s of `SerialMachine.flash.program` of `size` bytes into a fresh region per run
    (the emulated flash is made large enough), with the retries the link needed."""
    data = random.Random(1).randbytes(size)
    flash_size = str(max(16 * MIB, runs * size))
    with launch_board(flash, options=["--size", flash_size, *extra]) as agent, \
            SerialMachine(agent.url) as board:

        def once(run: int) -> None:
            board.flash.program(run * size, data)

        measured = measure(runs, size, once, agent.pid)
        return dataclasses.replace(measured, retries=board.link_stats.retries)


def board_frame_cost(frames: int = 64) -> tuple[float, float]:
    """Microseconds the board spends, in this process, on one FLASH_PROGRAM frame of 64 KiB of
    random data: decoding it (SLIP, CRC), and decoding plus programming plus the reply."""
    data = random.Random(3).randbytes(MAX_DATA)
    wires = [encode_frame(Frame(Op.FLASH_PROGRAM, seq, Flag.NONE,
                                pack_program(seq * MAX_DATA, data)))
             for seq in range(1, frames + 1)]
    started = time.perf_counter()
    for wire in wires:
        FrameDecoder().feed(wire)
    decode = (time.perf_counter() - started) / frames
    with SoftwareMachine(None, FlashGeometry(size=(frames + 1) * MAX_DATA)) as machine:
        agent = BoardAgent(machine)
        started = time.perf_counter()
        for wire in wires:
            agent.receive(wire)
        whole = (time.perf_counter() - started) / frames
    return decode * 1e6, whole * 1e6


def in_process_program_rate(size: int, runs: int) -> float:
    """Bytes/s of the software machine's own flash programming (no link at all)."""
    data = random.Random(1).randbytes(size)
    with SoftwareMachine(None, FlashGeometry(size=runs * size)) as machine:

        def once(run: int) -> float:
            started = time.perf_counter()
            machine.flash.program(run * size, data)
            return size / (time.perf_counter() - started)

        return best(runs, once)


def paced_read_rate(flash: Path, size: int, runs: int) -> tuple[float, int]:
    """Payload bytes/s of `flash.read` from an emulator paced at PACED_BAUD; and retries."""
    with launch_board(flash, options=["--baud", str(PACED_BAUD)]) as agent, \
            SerialMachine(agent.url) as board:
        data = random.Random(2).randbytes(runs * size)  # escapes as often as real images
        board.flash.program(0, data)  # the board's receiver is not paced: this is quick
        board.flash.read(0, 1024)  # warm up: the first request pays for nothing else

        def once(run: int) -> float:
            started = time.perf_counter()
            board.flash.read(run * size, size)
            return size / (time.perf_counter() - started)

        rate = best(runs, once)
        return rate, board.link_stats.retries


# --- report -----------------------------------------------------------------------------------


def mb(rate: float) -> str:
    return f"{rate / 1e6:8.1f} MB/s"


def verdict(ratio: float, target: float) -> str:
    return f"target >= {target}: {met(ratio >= target)}"


def run(args: argparse.Namespace) -> None:
    size = args.mib * MIB
    with tempfile.TemporaryDirectory(prefix="bench-serial-") as scratch:
        work = Path(scratch)
        raw = raw_copy_rate(size, args.runs)
        linked = program_rate(work / "a.flash", size, args.runs)
        ceiling = in_process_program_rate(size, args.runs)
        big_pages = program_rate(work / "b.flash", size, args.runs,
                                 "--page-size", "65536", "--sector-size", "65536")
        decode_us, frame_us = board_frame_cost()
        ratio = linked.rate / raw.rate
        print(f"(a) programming {args.mib} MiB through a pty (best of {args.runs})")
        print(f"    raw byte copy, pyserial -> pty -> process      {mb(raw.rate)}"
              f"   (slowest run {mb(raw.slowest).strip()})")
        print(f"    SerialMachine.flash.program -> emulator        {mb(linked.rate)}"
              f"   (slowest run {mb(linked.slowest).strip()}, retries {linked.retries})")
        print(f"    ratio {ratio:.2f}   {verdict(ratio, PROGRAM_TARGET)}")
        print("    where the time goes, CPU ms per MiB over all runs (wall ms per MiB):")
        print(f"      raw copy: writer {raw.here_cpu_ms:.1f}, reader {cpu(raw.there_cpu_ms)}"
              f" ({raw.wall_ms:.1f})")
        print(f"      link:     host {linked.here_cpu_ms:.1f}, emulator "
              f"{cpu(linked.there_cpu_ms)} ({linked.wall_ms:.1f})")
        print(f"      the board's work on one 64 KiB program frame, in-process: "
              f"decode {decode_us:.0f} us, all {frame_us:.0f} us")
        print(f"    the emulated flash alone                        {mb(ceiling)}")
        print(f"    same link, emulated flash with 64 KiB pages     {mb(big_pages.rate)}"
              f"   (ratio to raw {big_pages.rate / raw.rate:.2f})")
        paced_size = args.paced_kib * 1024
        paced, paced_retries = paced_read_rate(work / "c.flash", paced_size, args.runs)
        line_rate = PACED_BAUD / 10
        efficiency = paced / line_rate
        print(f"(b) reading {args.paced_kib} KiB from an emulator paced at {PACED_BAUD:,} baud")
        print(f"    line rate {line_rate:,.0f} B/s; payload {paced:,.0f} B/s"
              f"   (retries {paced_retries})")
        print(f"    ratio {efficiency:.3f}   {verdict(efficiency, LINE_TARGET)}")


def cpu(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mib", type=int, default=4, help="MiB programmed per run (a)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the best is kept")
    parser.add_argument("--paced-kib", type=int, default=192, help="KiB read per run (b)")
    parser.add_argument("--raw-sink", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_sink is not None:
        return raw_sink(args.raw_sink, args.runs)
    try:
        run(args)
    except (HalError, OSError, serial.SerialException) as exc:
        print(f"bench.serial_link: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
