"""Where things live in the device's flash: two boot-record copies, A/B slots per component,
two copies of the app certificate store.

    sector 0            boot record, copy 0
    sector 1            boot record, copy 1
    keystore slot A, B  (KEYSTORE_SLOT_SIZE each, rounded up to whole sectors)
    store slot A, B     (STORE_SLOT_SIZE each)
    app store 0, 1      (APP_STORE_COPY_SIZE each: the Applibs CertStore, `app_certstore`)
    the rest            unused by the model

The app store comes last so that the regions before it keep the offsets they had before it
was added: a device file provisioned earlier reads as it did, with an empty app store (its
copies are erased flash).

The staging area is not a fixed region: it is whatever the next commit may write before it
commits, i.e. the slot of each pair that the boot record does not name as active, and the
boot-record copy that does not hold the newest record (see `staging_regions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from firmware_model.errors import LayoutError
from firmware_model.trust.components import Component
from hal.interfaces import FlashGeometry

KEYSTORE_SLOT_SIZE = 16 * 1024
STORE_SLOT_SIZE = 256 * 1024
#: One copy of the app certificate store: its 24 KiB of certificates and at most 24 bytes of
#: bookkeeping per certificate (which is always smaller than the certificate), so 48 KiB holds
#: any store the accounting admits (`app_certstore_area`).
APP_STORE_COPY_SIZE = 48 * 1024
SLOT_NAMES = ("A", "B")


@dataclass(frozen=True)
class Region:
    """`size` bytes of flash at `offset`."""

    name: str
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class FlashLayout:
    """The regions of a flash of `geometry`; build one with `FlashLayout.for_geometry`."""

    geometry: FlashGeometry
    record_copies: tuple[Region, Region]
    slots: Mapping[Component, tuple[Region, Region]]
    app_store: tuple[Region, Region]

    @classmethod
    def for_geometry(
        cls,
        geometry: FlashGeometry,
        keystore_slot_size: int = KEYSTORE_SLOT_SIZE,
        store_slot_size: int = STORE_SLOT_SIZE,
        app_store_copy_size: int = APP_STORE_COPY_SIZE,
    ) -> FlashLayout:
        """Lay the regions out from offset 0; LayoutError if the flash is too small."""
        sector = geometry.sector_size
        cursor = 0

        def take(name: str, size: int) -> Region:
            nonlocal cursor
            region = Region(name, cursor, -(-size // sector) * sector)
            cursor = region.end
            return region

        records = (take("boot record 0", sector), take("boot record 1", sector))
        slots = {
            component: (take(f"{component.value} slot A", size),
                        take(f"{component.value} slot B", size))
            for component, size in ((Component.KEYSTORE, keystore_slot_size),
                                    (Component.STORE, store_slot_size))
        }
        app_store = (take("app store copy 0", app_store_copy_size),
                     take("app store copy 1", app_store_copy_size))
        if cursor > geometry.size:
            raise LayoutError(
                f"the flash layout needs {cursor:#x} bytes; the flash has {geometry.size:#x}"
            )
        return cls(geometry, records, slots, app_store)

    def slot(self, component: Component, index: int) -> Region:
        """Slot `index` (0 = A, 1 = B) of `component`."""
        return self.slots[component][index]

    def capacity(self, component: Component) -> int:
        """The largest image a slot of `component` holds."""
        return self.slots[component][0].size

    def regions(self) -> list[Region]:
        """Every region, in flash order."""
        found = [*self.record_copies, *(r for pair in self.slots.values() for r in pair),
                 *self.app_store]
        return sorted(found, key=lambda region: region.offset)


def staging_regions(
    layout: FlashLayout, active: Mapping[Component, int], newest_copy: int | None
) -> list[Region]:
    """What an update may write before it commits: inactive slots and the standby record copy.

    `active` is the slot index each component boots from; `newest_copy` the record copy holding
    the newest valid record (None: neither copy is valid, both are fair game).
    """
    staging = [layout.slot(component, 1 - index) for component, index in active.items()]
    for copy, region in enumerate(layout.record_copies):
        if copy != newest_copy:
            staging.append(region)
    return sorted(staging, key=lambda region: region.offset)


def complement(size: int, regions: Iterable[Region]) -> list[tuple[int, int]]:
    """The (start, end) spans of `0..size` that none of `regions` covers."""
    spans = []
    cursor = 0
    for region in sorted(regions, key=lambda r: r.offset):
        if region.offset > cursor:
            spans.append((cursor, region.offset))
        cursor = max(cursor, region.end)
    if cursor < size:
        spans.append((cursor, size))
    return spans


def sectors_for(region: Region, length: int, sector_size: int) -> tuple[int, int]:
    """The sector-aligned (offset, length) to erase before writing `length` bytes at `region`."""
    return region.offset, -(-length // sector_size) * sector_size


def slot_name(index: int) -> str:
    """'A' or 'B'."""
    return SLOT_NAMES[index]
