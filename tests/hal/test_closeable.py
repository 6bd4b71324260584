"""Closeable: the one context-manager base of the machines and the emulator."""

from __future__ import annotations

import pytest

from hal.emulator.server import Emulator, start_emulator
from hal.errors import HalError, LinkError
from hal.interfaces import Closeable, FlashGeometry
from hal.serial.machine import SerialMachine
from hal.soft.machine import SoftwareMachine

SMALL = FlashGeometry(size=64 * 1024, sector_size=4096, page_size=256)


class Held(Closeable):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_with_gives_the_object_and_closes_it_even_when_the_body_raises() -> None:
    held = Held()
    with pytest.raises(RuntimeError, match="body"), held as same:
        assert same is held and held.closed == 0
        raise RuntimeError("body")
    assert held.closed == 1


def test_a_closeable_has_to_say_how_it_closes() -> None:
    class Unclosable(Closeable):
        pass

    with pytest.raises(TypeError, match="close"):
        Unclosable()  # type: ignore[abstract]


def test_the_machines_and_the_emulator_close_on_leaving_with() -> None:
    with SoftwareMachine(None, SMALL) as machine:
        with start_emulator(machine) as emulator, SerialMachine(emulator.url) as board:
            assert isinstance(board, Closeable) and isinstance(emulator, Emulator)
            board.flash.program(0, b"kept")
        with pytest.raises(LinkError, match="closed"):
            board.flash.read(0, 4)
        with pytest.raises(HalError, match="open a port"):  # its pty is closed
            emulator.serve_forever()
        assert machine.flash.read(0, 4) == b"kept"
    assert isinstance(machine, Closeable)
