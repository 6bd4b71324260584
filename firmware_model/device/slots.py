"""Writing an image into a slot: erase what it needs, program it, read it back by hash."""

from __future__ import annotations

import hashlib

from firmware_model.device.flash_layout import FlashLayout, Region, sectors_for, slot_name
from firmware_model.errors import ReadbackError, SizeLimitError
from firmware_model.trust.components import Component
from hal.interfaces import Flash


def write_slot(
    flash: Flash,
    layout: FlashLayout,
    component: Component,
    index: int,
    data: bytes,
    digest: bytes | None = None,
) -> bytes:
    """Write `data` at the start of slot `index` of `component`; return its SHA-256.

    Erases only the sectors the image needs, programs it, then compares the flash's own hash
    of the range with the image's (ReadbackError if they differ). `digest`, if given, is the
    image's SHA-256 as the caller already computed it (a wrong one fails the read-back).
    """
    region = layout.slot(component, index)
    if len(data) > region.size:
        raise SizeLimitError(f"{len(data)}-byte image does not fit {region.name}")
    return write_region(flash, region, data, digest,
                        what=f"{component.value} slot {slot_name(index)}")


def write_region(flash: Flash, region: Region, data: bytes, digest: bytes | None = None, *,
                 what: str | None = None) -> bytes:
    """Write `data` (which fits) at the start of `region`: erase only the sectors it needs,
    program it, compare the flash's own hash of the range with `digest` (its SHA-256, computed
    here if not given); ReadbackError naming `what` (default: the region) if they differ.
    Returns the digest."""
    erase_at, erase_length = sectors_for(region, len(data), flash.geometry.sector_size)
    flash.erase(erase_at, erase_length)
    flash.program(region.offset, data)
    if digest is None:
        digest = hashlib.sha256(data).digest()
    if flash.hash(region.offset, len(data)) != digest:
        raise ReadbackError(f"{what or region.name} does not read back what was written")
    return digest
