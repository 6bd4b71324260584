"""The C board agent (board/, docs/board.md): how big it is on the microcontrollers, and how
much of its line it turns into programmed flash.

    .venv/bin/python -m bench.board [--qemu-kib N] [--native-mib N] [--runs N]

Build first (`make board`). Every figure is measured in this run; the ratios are what to read.

(a) Sizes, read from the ELFs with pyelftools: board/build/qemu/board-agent.elf and
    board/build/mt3620/board-agent.elf, both built with an announced max_payload of 4,096.
    - text: every allocated section that is not writable (code, read-only data, the vector
      table) - the core, the platform, and what they pull in from picolibc and libgcc. It is
      split by compilation unit (DWARF: address ranges of functions, addresses of variables):
      board/core, the platform (board/cortexm and board/qemu or board/mt3620), the C library
      and runtime (soft-float f64 on the qemu build), and bytes no symbol covers (string
      literals, alignment).
    - static RAM: .data + .bss. Left out, and printed apart: the flash model (mt3620: the
      symbol `model_flash`, 64 KiB in SYSRAM; qemu: none, its flash is a host file), the
      .noinit region (qemu: what survives a reset - the console, STATS, the clocks) and the
      stack region (qemu: .stack, 4 KiB reserved; mt3620: the rest of TCM, no section).
    Targets: text <= 24 KiB; static RAM <= 24 KiB apart from the flash model.

(b) Throughput: `SerialMachine.flash.program` of the same random bytes into a fresh region of
    the agent's flash (the host's whole call: chunks, replies, and the FLASH_HASH it checks
    the range with), each run against a raw baseline on the same line, runs interleaved, the
    best of each kept. Target >= 0.8.
    - qemu: the agent under run_qemu.py (window 1, P = 4,096) against the raw line through the
      same QEMU UART: board/build/qemu/echo.elf, run by the same launcher on the same board,
      with the same UART set-up and driver (the receive interrupt into a ring, taken by the
      main loop) and no protocol at all. What is fair to echo: programming sends the data one
      way and gets a short reply per 4 KiB frame back, so the baseline sends the same bytes
      the same way, streamed (no waiting between blocks), and the echo firmware sends back
      one byte per 4 KiB it took ('A' mode). An echo of every byte ('E' mode, printed for
      reference) is no fair baseline: QEMU's 16550 hands each transmitted byte to the pty
      with a write(2) of its own and the firmware polls the transmitter per byte, so it
      measures the board's transmit path, which programming hardly uses.
      Read the ratio with this in mind: QEMU's 16550 takes from the pty only what its FIFO
      has room for, one refill per turn of QEMU's main loop, and each byte the firmware reads
      wakes that loop; how many bytes a turn brings depends on the firmware's timing, and the
      echo, idle in WFI between interrupts, gets fewer than the busy agent. So the raw line
      here is slower than the agent (a ratio above 1): on QEMU the UART model, not the agent,
      bounds the link. (Tried, no faster: pausing after each chunk, reading SysTick as the
      agent's loop does, a semihosting call per chunk, 20-byte replies, 4 KiB writes or
      stop-and-wait from the host; polling instead of WFI is slower still.)
    - native: the agent as the tests run it (board/build/native/board-agent, ASan+UBSan) and
      the same sources without sanitizers (board-agent-release, -O2), against
      bench.serial_link's raw pty copy of the same number of bytes to a process (pyserial
      writing the slave, the process reading the master, one ack byte). The raw copy swings
      widely on a shared machine (its best run is what the ratio uses).

Exits 0 whether or not a target is met; 1 (one line on stderr) if something could not run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import serial
from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from bench.serial_link import process_cpu, raw_copy_rate
from bench.timing import met
from hal.emulator.boards import NATIVE, QEMU_FIRMWARE, REPO, board_command
from hal.emulator.launcher import launch
from hal.errors import HalError
from hal.serial.machine import SerialMachine

BUILD = REPO / "board" / "build"
ECHO_ELF = BUILD / "qemu" / "echo.elf"
MT3620_ELF = BUILD / "mt3620" / "board-agent.elf"
NATIVE_RELEASE = NATIVE.with_name("board-agent-release")

KIB = 1024
MIB = 1024 * KIB
TEXT_TARGET = 24 * KIB
RAM_TARGET = 24 * KIB
RATIO_TARGET = 0.8
ACK_BLOCK = 4096  # what echo.elf's 'A' mode acknowledges (board/qemu/echo/echo.c)
FLASH_MODEL_SYMBOL = "model_flash"  # board/mt3620/main.c
APART = {".noinit": "kept across a reset", ".stack": "stack"}


class BenchError(Exception):
    """Something the bench needs is missing or failed."""


# --- (a) sizes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """One firmware image: text by part, static RAM, and the regions left out of it."""

    name: str
    text: int
    text_parts: dict[str, int]
    static_ram: int
    apart: dict[str, int]  # region -> bytes, not in static_ram


def _part(unit: str | None) -> str:
    """Which part a compilation unit (its DW_AT_name, relative to board/) belongs to."""
    if unit is None:
        return "C library and runtime"
    if unit.startswith("core/"):
        return "core"
    if unit.split("/")[0] in ("cortexm", "qemu", "mt3620"):
        return "platform"
    return "C library and runtime"


def _units_by_address(elf: ELFFile) -> Callable[[int], str | None]:
    """The compilation unit a code or data address belongs to (None if DWARF does not say)."""
    dwarf = elf.get_dwarf_info()
    names = {cu.cu_offset: cu.get_top_DIE().attributes["DW_AT_name"].value.decode()
             for cu in dwarf.iter_CUs()}
    variables: dict[int, str] = {}
    for cu in dwarf.iter_CUs():
        for die in cu.iter_DIEs():
            location = die.attributes.get("DW_AT_location") if die.tag == "DW_TAG_variable" \
                else None
            value = location.value if location is not None else None
            if isinstance(value, list) and len(value) == 5 and value[0] == 0x03:  # DW_OP_addr
                variables[int.from_bytes(bytes(value[1:5]), "little")] = names[cu.cu_offset]
    aranges = dwarf.get_aranges()

    def unit(address: int) -> str | None:
        if address in variables:
            return variables[address]
        offset = aranges.cu_offset_at_addr(address) if aranges is not None else None
        return names.get(offset) if offset is not None else None

    return unit


def _text_parts(elf: ELFFile, text_ranges: list[tuple[int, int]]) -> dict[str, int]:
    """Bytes of text per part: the union of the symbols' ranges, each byte counted once."""
    unit = _units_by_address(elf)
    symbols = elf.get_section_by_name(".symtab")
    spans = []
    for symbol in symbols.iter_symbols() if isinstance(symbols, SymbolTableSection) else ():
        start, size = symbol["st_value"] & ~1, symbol["st_size"]  # Thumb: bit 0 set
        if size and symbol["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT") and any(
                low <= start < high for low, high in text_ranges):
            spans.append((start, start + size, _part(unit(start))))
    parts = dict.fromkeys(("core", "platform", "C library and runtime"), 0)
    covered = 0
    for start, end, part in sorted(spans):
        start = max(start, covered)
        if end > start:
            parts[part] += end - start
            covered = end
    parts["no symbol (strings, alignment)"] = sum(h - low for low, h in text_ranges) - sum(
        parts.values())
    return parts


def measure_sizes(name: str, path: Path) -> Sizes:
    """Text and static RAM of the firmware at `path` (see the module doc)."""
    try:
        with path.open("rb") as handle:
            elf = ELFFile(handle)
            text_ranges, ram, apart = [], 0, {}
            model = _symbol_section(elf, FLASH_MODEL_SYMBOL)
            for section in elf.iter_sections():
                flags, size = section["sh_flags"], section["sh_size"]
                if not flags & SH_FLAGS.SHF_ALLOC or not size:
                    continue
                if not flags & SH_FLAGS.SHF_WRITE:
                    text_ranges.append((section["sh_addr"], section["sh_addr"] + size))
                elif section.name == model:
                    apart[f"flash model ({FLASH_MODEL_SYMBOL}, {section.name})"] = size
                elif section.name in APART:
                    apart[f"{section.name} ({APART[section.name]})"] = size
                else:
                    ram += size
            parts = _text_parts(elf, text_ranges)
    except (OSError, ELFError) as error:
        raise BenchError(f"{path}: {error} (make board)") from error
    return Sizes(name, sum(high - low for low, high in text_ranges), parts, ram, apart)


def _symbol_section(elf: ELFFile, name: str) -> str | None:
    symbols = elf.get_section_by_name(".symtab")
    if not isinstance(symbols, SymbolTableSection):
        return None
    for symbol in symbols.get_symbol_by_name(name) or ():
        index = symbol["st_shndx"]
        if isinstance(index, int):
            return str(elf.get_section(index).name)
    return None


def report_sizes(all_sizes: list[Sizes]) -> None:
    print("(a) firmware sizes, max_payload 4,096 (pyelftools on the ELFs)")
    for s in all_sizes:
        print(f"    {s.name}: text {s.text:,} B ({s.text / KIB:.1f} KiB)   target <= 24 KiB: "
              f"{met(s.text <= TEXT_TARGET)}")
        print("        " + ", ".join(f"{part} {size:,}" for part, size in s.text_parts.items()))
        print(f"      static RAM (.data + .bss) {s.static_ram:,} B ({s.static_ram / KIB:.1f} KiB)"
              f"   target <= 24 KiB apart from the flash model: "
              f"{met(s.static_ram <= RAM_TARGET)}")
        if s.apart:
            print("        left out: " + ", ".join(f"{k} {v:,}" for k, v in s.apart.items()))


# --- (b) throughput ---------------------------------------------------------------------------


@dataclass
class Rates:
    """Bytes/s of each run of two ways of moving the same bytes, measured in turns."""

    linked: list[float]
    raw: list[float]
    retries: int = 0
    cpu_ms_per_mib: float | None = None  # the agent process's CPU, over all its runs

    @property
    def ratio(self) -> float:
        """Best against best: the verdict's."""
        return max(self.linked) / max(self.raw)

    @property
    def median_ratio(self) -> float:
        """Median against median: steadier where the baseline swings."""
        return statistics.median(self.linked) / statistics.median(self.raw)


def timed(once: Callable[[], None], size: int) -> float:
    begun = time.perf_counter()
    once()
    return size / (time.perf_counter() - begun)


def qemu_command(flash: Path, size: int, *extra: str) -> list[str]:
    return [*board_command("qemu"), "--flash", str(flash), "--pty", "--exit-with-parent",
            "--size", str(size), *extra]


class RawLine:
    """The echo firmware's port in one mode: 'A' (an ack byte per 4 KiB) or 'E' (every byte)."""

    def __init__(self, url: str, mode: bytes) -> None:
        self.port = serial.serial_for_url(url, timeout=10, write_timeout=30)
        self.mode = mode
        self.port.write(mode)

    def stream(self, data: bytes) -> None:
        """Send `data` without waiting between blocks; return once the board has taken it."""
        if self.mode == b"A":
            self.port.write(data)
            self._expect(len(data) // ACK_BLOCK)
            return
        writer = threading.Thread(target=self.port.write, args=(data,))
        writer.start()
        self._expect(len(data))
        writer.join()

    def _expect(self, count: int) -> None:
        got = 0
        while got < count:
            chunk = self.port.read(min(count - got, max(1, self.port.in_waiting)))
            if not chunk:
                raise BenchError(f"the echo firmware answered {got} of {count} bytes")
            got += len(chunk)

    def close(self) -> None:
        self.port.close()


def qemu_rates(folder: Path, size: int, runs: int) -> tuple[Rates, float]:
    """The agent's programming against the streamed raw line, interleaved; and the rate of an
    echo of every byte (one run, for reference)."""
    for path in (QEMU_FIRMWARE, ECHO_ELF):
        if not path.exists():
            raise BenchError(f"{path} is not built (make board)")
    data = random.Random(1).randbytes(size)
    flash_size = -(-runs * size // 4096) * 4096
    echo = qemu_command(folder / "echo.flash", 4096, "--firmware", str(ECHO_ELF))
    rates = Rates([], [])
    with launch(qemu_command(folder / "qemu.flash", flash_size), folder / "qemu.stderr") as agent, \
            SerialMachine(agent.url) as board, launch(echo, folder / "echo.stderr") as line:
        raw = RawLine(line.url, b"A")
        try:
            for run in range(runs):
                rates.raw.append(timed(partial(raw.stream, data), size))
                rates.linked.append(timed(partial(board.flash.program, run * size, data), size))
        finally:
            raw.close()
        rates.retries = board.link_stats.retries
    with launch(echo, folder / "echo-every-byte.stderr") as line:
        every = RawLine(line.url, b"E")
        try:
            per_byte = timed(partial(every.stream, data), size)
        finally:
            every.close()
    return rates, per_byte


def native_rates(folder: Path, size: int, runs: int) -> tuple[Rates, Rates]:
    """The native agents' programming (as the tests run it, with sanitizers; and the release
    build) against bench.serial_link's raw pty copy, the three interleaved run by run."""
    for path in (NATIVE, NATIVE_RELEASE):
        if not path.exists():
            raise BenchError(f"{path} is not built (make board)")
    data = random.Random(1).randbytes(size)
    tested, release, raw = Rates([], []), Rates([], []), []

    def command(agent: Path) -> list[str]:
        return [str(agent), "--flash", str(folder / f"{agent.name}.flash"), "--pty",
                "--exit-with-parent", "--size", str(runs * size + 4096)]

    with launch(command(NATIVE), folder / "native.stderr") as one, \
            SerialMachine(one.url) as first, \
            launch(command(NATIVE_RELEASE), folder / "release.stderr") as two, \
            SerialMachine(two.url) as second:
        agents = ((one, first, tested), (two, second, release))
        for _, board, _ in agents:
            board.flash.program(runs * size, data[:4096])  # the first request pays for no run
        cpu = {agent.pid: 0.0 for agent, _, _ in agents}
        for run in range(runs):
            raw.append(raw_copy_rate(size, 1).rate)
            for agent, board, rates in agents:
                before = process_cpu(agent.pid)
                rates.linked.append(timed(partial(board.flash.program, run * size, data), size))
                after = process_cpu(agent.pid)
                if before is not None and after is not None:
                    cpu[agent.pid] += after - before
        for agent, board, rates in agents:
            rates.retries = board.link_stats.retries
            rates.cpu_ms_per_mib = cpu[agent.pid] * 1e3 / (runs * size / MIB)
    tested.raw = release.raw = raw
    return tested, release


def kib_s(rate: float) -> str:
    return f"{rate / KIB:,.0f} KiB/s"


def mib_s(rate: float) -> str:
    return f"{rate / MIB:,.1f} MiB/s"


def report_rates(rates: Rates, unit: Callable[[float], str], linked: str,
                 raw: str | None) -> None:
    if raw is not None:
        print(f"    {raw:<58} {unit(max(rates.raw)):>12}   (slowest run {unit(min(rates.raw))})")
    cpu = "" if rates.cpu_ms_per_mib is None else f", agent CPU {rates.cpu_ms_per_mib:.1f} ms/MiB"
    print(f"    {linked:<58} {unit(max(rates.linked)):>12}   (slowest run "
          f"{unit(min(rates.linked))}, retries {rates.retries}{cpu})")
    print(f"      ratio {rates.ratio:.2f} (medians: {rates.median_ratio:.2f})   target >= "
          f"{RATIO_TARGET}: {met(rates.ratio >= RATIO_TARGET)}")


def run(args: argparse.Namespace) -> None:
    report_sizes([measure_sizes("qemu (ast1030-evb)", QEMU_FIRMWARE),
                  measure_sizes("mt3620 (RT core)", MT3620_ELF)])
    with tempfile.TemporaryDirectory(prefix="bench-board-") as scratch:
        folder = Path(scratch)
        qemu, per_byte = qemu_rates(folder, args.qemu_kib * KIB, args.runs)
        print(f"(b) programming {args.qemu_kib} KiB into the qemu agent (best of {args.runs}, "
              "interleaved)")
        report_rates(qemu, kib_s, "SerialMachine.flash.program -> run_qemu.py agent",
                     "raw line: the same bytes streamed to echo.elf ('A')")
        print(f"    for reference, an echo of every byte ('E'): {kib_s(per_byte)}")
        tested, release = native_rates(folder, args.native_mib * MIB, args.runs)
        print(f"    programming {args.native_mib} MiB into the native agent (best of {args.runs}, "
              "interleaved)")
        report_rates(tested, mib_s, "SerialMachine.flash.program -> board-agent (ASan+UBSan)",
                     "raw pty copy to a process (bench.serial_link)")
        report_rates(release, mib_s, "  the same sources without sanitizers (-release)", None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--qemu-kib", type=int, default=256, help="KiB programmed per run, qemu")
    parser.add_argument("--native-mib", type=int, default=4,
                        help="MiB programmed per run, native")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the best is kept")
    args = parser.parse_args(argv)
    try:
        run(args)
    except (BenchError, HalError, OSError, serial.SerialException) as error:
        print(f"bench.board: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
