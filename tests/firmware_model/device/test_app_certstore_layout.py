"""The flash layout with the app store added: every geometry the tests use holds it, and the
regions that were there before it kept their offsets (device files made earlier still read)."""

from __future__ import annotations

import itertools

import pytest

from firmware_model.agent.sweep import SWEEP_GEOMETRY
from firmware_model.device.flash_layout import (
    APP_STORE_COPY_SIZE,
    FlashLayout,
    staging_regions,
)
from firmware_model.trust.components import Component
from hal.interfaces import FlashGeometry
from hal.soft.machine import MT3620_GEOMETRY

MIB = 1024 * 1024
GEOMETRIES = {
    "mt3620-16MiB": MT3620_GEOMETRY,
    "sweep-1MiB": SWEEP_GEOMETRY,
    "qemu-tier-1MiB": FlashGeometry(size=MIB),  # make test: --agent-option=--size 1048576
    "64KiB-sectors": FlashGeometry(size=16 * MIB, sector_size=64 * 1024, page_size=256),
}
#: Where every region sat before the app store was added (4 KiB sectors), and where it sits.
BEFORE = {"boot record 0": (0x0, 0x1000), "boot record 1": (0x1000, 0x1000),
          "keystore slot A": (0x2000, 0x4000), "keystore slot B": (0x6000, 0x4000),
          "store slot A": (0xA000, 0x40000), "store slot B": (0x4A000, 0x40000)}
APP_STORE = {"app store copy 0": (0x8A000, 0xC000), "app store copy 1": (0x96000, 0xC000)}


@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_every_geometry_holds_the_layout_in_disjoint_sector_aligned_regions(
        geometry: FlashGeometry) -> None:
    layout = FlashLayout.for_geometry(geometry)
    regions = layout.regions()
    assert [r.name for r in regions[-2:]] == ["app store copy 0", "app store copy 1"]
    for region in regions:
        assert region.offset % geometry.sector_size == 0 == region.size % geometry.sector_size
    for before, after in itertools.pairwise(regions):
        assert before.end <= after.offset
    assert regions[-1].end <= geometry.size
    assert all(r.size >= APP_STORE_COPY_SIZE for r in layout.app_store)


@pytest.mark.parametrize("geometry", [MT3620_GEOMETRY, SWEEP_GEOMETRY], ids=["16MiB", "1MiB"])
def test_the_regions_that_were_there_before_keep_their_offsets(geometry: FlashGeometry) -> None:
    regions = {r.name: (r.offset, r.size) for r in FlashLayout.for_geometry(geometry).regions()}
    assert regions == BEFORE | APP_STORE


def test_an_update_never_stages_into_the_app_store() -> None:
    layout = FlashLayout.for_geometry(MT3620_GEOMETRY)
    for keystore, store, copy in itertools.product((0, 1), (0, 1), (None, 0, 1)):
        staging = staging_regions(layout, {Component.KEYSTORE: keystore,
                                           Component.STORE: store}, copy)
        assert not set(staging) & set(layout.app_store)
