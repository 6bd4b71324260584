"""Writing an image into a slot: erase what it needs, program it, read it back by hash."""

from __future__ import annotations

import hashlib

from firmware_model.errors import ReadbackError, SizeLimitError
from firmware_model.layout import Component, FlashLayout, sectors_for, slot_name
from hal.interfaces import Flash


def write_slot(
    flash: Flash, layout: FlashLayout, component: Component, index: int, data: bytes
) -> bytes:
    """Write `data` at the start of slot `index` of `component`; return its SHA-256.

    Erases only the sectors the image needs, programs it, then compares the flash's own hash
    of the range with the image's (ReadbackError if they differ).
    """
    region = layout.slot(component, index)
    if len(data) > region.size:
        raise SizeLimitError(f"{len(data)}-byte image does not fit {region.name}")
    erase_at, erase_length = sectors_for(region, len(data), layout.geometry.sector_size)
    flash.erase(erase_at, erase_length)
    flash.program(region.offset, data)
    digest = hashlib.sha256(data).digest()
    if flash.hash(region.offset, len(data)) != digest:
        raise ReadbackError(
            f"{component.value} slot {slot_name(index)} does not read back what was written"
        )
    return digest
