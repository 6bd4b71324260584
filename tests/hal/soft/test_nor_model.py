"""Property tests: the software flash against a plain reference model of NOR, cuts included."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.errors import FlashError, PowerLoss
from hal.interfaces import FlashGeometry
from hal.soft.flash import OpSpans
from hal.soft.machine import SoftwareMachine
from hal.soft.power_cuts import CutMode

TINY = FlashGeometry(size=1024, sector_size=256, page_size=64)
ERASED = 0xFF


@dataclass(frozen=True)
class Step:
    """One call on the flash: program `data` at `offset`, or erase `length` bytes there."""

    kind: str
    offset: int
    data: bytes = b""
    length: int = 0


class ReferenceNor:
    """NOR as the datasheet says it, one byte at a time, logging its elementary operations."""

    def __init__(self, geometry: FlashGeometry) -> None:
        self.geometry = geometry
        self.cells = bytearray([ERASED] * geometry.size)
        self.ops: list[tuple[int, bytes]] = []

    def apply(self, step: Step) -> bool:
        """Do `step`; False (and nothing done) if NOR rules forbid it."""
        if step.kind == "program":
            return self._program(step.offset, step.data)
        return self._erase(step.offset, step.length)

    def _program(self, offset: int, data: bytes) -> bool:
        if offset < 0 or offset + len(data) > self.geometry.size:
            return False
        if any(new & ~self.cells[offset + i] for i, new in enumerate(data)):
            return False
        page = self.geometry.page_size
        start = 0
        for i in range(1, len(data) + 1):
            if i == len(data) or (offset + i) % page == 0:
                self._do(offset + start, data[start:i])
                start = i
        return True

    def _erase(self, offset: int, length: int) -> bool:
        sector, size = self.geometry.sector_size, self.geometry.size
        if offset < 0 or length < 0 or offset + length > size or offset % sector or length % sector:
            return False
        for at in range(offset, offset + length, sector):
            self._do(at, bytes([ERASED] * sector))
        return True

    def _do(self, offset: int, new: bytes) -> None:
        self.ops.append((offset, new))
        self.cells[offset : offset + len(new)] = new


def run(machine: SoftwareMachine, step: Step) -> bool:
    """Do `step` on the machine's flash; False if it raised FlashError."""
    try:
        if step.kind == "program":
            machine.flash.program(step.offset, step.data)
        else:
            machine.flash.erase(step.offset, step.length)
    except FlashError:
        return False
    return True


def draw_step(data: st.DataObject, reference: ReferenceNor) -> Step:
    """A step that is often legal: aligned erases, programs that mostly only clear bits."""
    geometry = reference.geometry
    sector, size = geometry.sector_size, geometry.size
    if data.draw(st.booleans(), label="erase?"):
        aligned = st.integers(0, size // sector).map(lambda i: i * sector)
        offset = data.draw(st.one_of(aligned, st.integers(-2, size + 2)), label="erase at")
        length = data.draw(st.one_of(aligned, st.integers(-1, 2 * sector)), label="erase length")
        return Step("erase", offset, length=length)
    offset = data.draw(st.integers(-2, size), label="program at")
    length = data.draw(st.integers(0, 3 * geometry.page_size), label="program length")
    if data.draw(st.booleans(), label="random bytes?"):
        return Step("program", offset, data.draw(st.binary(min_size=length, max_size=length)))
    masks = data.draw(st.binary(min_size=length, max_size=length), label="bits to keep")
    span = range(offset, offset + length)
    old = [reference.cells[at] if 0 <= at < size else ERASED for at in span]
    return Step("program", offset, bytes(was & mask for was, mask in zip(old, masks, strict=True)))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_flash_agrees_with_the_reference_model(data: st.DataObject) -> None:
    machine, reference = SoftwareMachine(None, TINY), ReferenceNor(TINY)
    snap = machine.snapshot()
    for _ in range(data.draw(st.integers(1, 10), label="steps")):
        step = draw_step(data, reference)
        assert run(machine, step) == reference.apply(step), step
        assert machine.flash.read(0, TINY.size) == reference.cells
        assert machine.faults.op_count == len(reference.ops)  # pages counted one by one
        last = machine.faults.last_op
        if reference.ops:
            assert last is not None
            assert (last.offset, last.length) == (reference.ops[-1][0], len(reference.ops[-1][1]))
    machine.restore(snap)  # only the sectors marked dirty are copied back
    assert machine.flash.read(0, TINY.size) == bytes([ERASED]) * TINY.size


def torn_by_bits(old: bytes, new: bytes) -> bytes:
    """The documented default tear: the first half of the changing bits, in address order."""
    changing = [
        (i, bit)
        for i in range(len(old))
        for bit in range(7, -1, -1)
        if (old[i] ^ new[i]) >> bit & 1
    ]
    result = bytearray(old)
    for i, bit in changing[: len(changing) // 2]:
        result[i] ^= 1 << bit
    return bytes(result)


def expected_after_cut(
    ops: list[tuple[int, bytes]], cut_at: int, mode: CutMode, torn_bytes: int | None
) -> bytes:
    cells = bytearray([ERASED] * TINY.size)
    for offset, new in ops[:cut_at]:
        cells[offset : offset + len(new)] = new
    offset, new = ops[cut_at]
    old = bytes(cells[offset : offset + len(new)])
    if mode is CutMode.AFTER:
        cells[offset : offset + len(new)] = new
    elif mode is CutMode.TORN and torn_bytes is not None:
        cells[offset : offset + min(torn_bytes, len(new))] = new[:torn_bytes]
    elif mode is CutMode.TORN:
        cells[offset : offset + len(new)] = torn_by_bits(old, new)
    return bytes(cells)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_cut_leaves_exactly_the_operations_before_it(data: st.DataObject) -> None:
    reference = ReferenceNor(TINY)
    first_at = data.draw(st.integers(0, TINY.size - 1), label="first program at")
    first_data = data.draw(st.binary(min_size=1, max_size=TINY.size - first_at), label="data")
    first = Step("program", first_at, first_data)
    assert reference.apply(first)  # anything can be programmed over erased flash
    steps = [first]
    for _ in range(data.draw(st.integers(0, 7), label="more steps")):
        step = draw_step(data, reference)
        if reference.apply(step):
            steps.append(step)
    cut_at = data.draw(st.integers(0, len(reference.ops) - 1), label="cut at")
    mode = data.draw(st.sampled_from(CutMode), label="mode")
    torn_bytes = None
    if mode is CutMode.TORN:
        torn_bytes = data.draw(st.one_of(st.none(), st.integers(0, 300)), label="torn bytes")
    machine = SoftwareMachine(None, TINY)
    machine.faults.arm(cut_at, mode, torn_bytes=torn_bytes)
    with pytest.raises(PowerLoss):
        for step in steps:
            run(machine, step)
    assert not machine.powered
    machine.power_on()
    expected = expected_after_cut(reference.ops, cut_at, mode, torn_bytes)
    assert machine.flash.read(0, TINY.size) == expected


@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(1, 300))
def test_op_spans_split_a_range_at_unit_boundaries(offset: int, length: int, unit: int) -> None:
    spans = OpSpans(offset, length, unit)
    expected = []
    at = offset
    while at < offset + length:
        step = min(unit - at % unit, offset + length - at)
        expected.append((at, step))
        at += step
    assert list(spans) == expected == spans[:]
    if expected:
        assert spans[-1] == expected[-1]
    with pytest.raises(IndexError):
        spans[len(expected)]


def test_a_cut_armed_past_a_bulk_program_fires_on_its_own_operation() -> None:
    machine = SoftwareMachine(None, TINY)
    machine.faults.arm(7, CutMode.BEFORE)  # 4 pages now, the cut on the 4th page of the next
    machine.flash.program(0, bytes(4 * TINY.page_size))
    assert machine.faults.armed is not None and machine.faults.op_count == 4
    with pytest.raises(PowerLoss):
        machine.flash.program(4 * TINY.page_size, bytes(6 * TINY.page_size))
    assert machine.faults.op_count == 8
    machine.power_on()
    assert machine.flash.read(0, TINY.size) == bytes(7 * TINY.page_size) + bytes(
        [ERASED]) * (TINY.size - 7 * TINY.page_size)
