"""The software machine's power rail: every peripheral checks it before it acts."""

from __future__ import annotations

from collections.abc import Callable

from hal.errors import PowerLoss


class PowerRail:
    """Whether the machine has power. A fresh rail is on."""

    def __init__(self) -> None:
        self._on = True
        self._on_cut: list[Callable[[], None]] = []

    @property
    def on(self) -> bool:
        """True while the machine is powered."""
        return self._on

    def require(self, what: str) -> None:
        """Raise PowerLoss naming `what` unless the machine is powered."""
        if not self._on:
            raise PowerLoss(f"{what}: the machine is powered off (call power_on())")

    def when_cut(self, listener: Callable[[], None]) -> None:
        """Call `listener` each time power is cut (to stop what RAM-held state was running)."""
        self._on_cut.append(listener)

    def cut(self) -> None:
        """Remove power: every later `require` raises PowerLoss until `restore`."""
        self._on = False
        for listener in self._on_cut:
            listener()

    def restore(self) -> None:
        """Give power back."""
        self._on = True
