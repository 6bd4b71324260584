"""A small memory map: named regions of the address space, each backed by a device.

The addresses are this model's own (they are not the MT3620's); what matters is that every
device of the software machine has a place and a name, QEMU-style.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hal.errors import HalError


class MappedDevice(Protocol):
    """A device that can be read through the memory map."""

    def read_mapped(self, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` inside the device."""


@dataclass(frozen=True)
class MappedRegion:
    """`size` bytes at `base`, backed by `device`."""

    name: str
    base: int
    size: int
    device: MappedDevice

    @property
    def end(self) -> int:
        """The first address after the region."""
        return self.base + self.size


class MemoryMap:
    """Regions that do not overlap, found by name or by address."""

    def __init__(self) -> None:
        self._regions: dict[str, MappedRegion] = {}

    def add(self, name: str, base: int, size: int, device: MappedDevice) -> MappedRegion:
        """Map `device` at `base`; HalError if the name is taken or the range overlaps."""
        region = MappedRegion(name, base, size, device)
        if name in self._regions:
            raise HalError(f"memory map already has a region called {name!r}")
        if size <= 0 or base < 0:
            raise HalError(f"region {name!r}: bad base {base:#x} or size {size:#x}")
        for other in self._regions.values():
            if region.base < other.end and other.base < region.end:
                raise HalError(f"region {name!r} overlaps {other.name!r} at {other.base:#x}")
        self._regions[name] = region
        return region

    def region(self, name: str) -> MappedRegion:
        """The region called `name`; HalError if there is none."""
        try:
            return self._regions[name]
        except KeyError:
            raise HalError(f"memory map has no region called {name!r}") from None

    def regions(self) -> list[MappedRegion]:
        """Every region, lowest address first."""
        return sorted(self._regions.values(), key=lambda region: region.base)

    def resolve(self, address: int, length: int = 1) -> tuple[MappedRegion, int]:
        """The region holding `address..address+length` and the offset inside it.

        HalError if the range is unmapped or crosses a region's end.
        """
        for region in self._regions.values():
            if region.base <= address < region.end:
                if address + length > region.end:
                    raise HalError(
                        f"{length:#x} bytes at {address:#x} run past the end of {region.name!r}"
                    )
                return region, address - region.base
        raise HalError(f"nothing is mapped at {address:#x}")

    def read(self, address: int, length: int) -> bytes:
        """`length` bytes at `address`, read from the device mapped there."""
        region, offset = self.resolve(address, length)
        return region.device.read_mapped(offset, length)
