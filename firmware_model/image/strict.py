"""The strict-reading rules every payload reader shares: how a field that does not parse is
named, and which bytes may follow a payload (the envelope's zero padding, nothing else)."""

from __future__ import annotations

from firmware_model.errors import ImageFormatError


def check_trailing(
    data: bytes | bytearray | memoryview, end: int, what: str, base_offset: int = 0
) -> None:
    """ImageFormatError unless `data` ends at `end` or only envelope padding follows.

    Padding is fewer than 4 zero bytes that bring `base_offset + len(data)` (the whole
    payload) to a multiple of 4. The error names `base_offset + end`.
    """
    size = len(data)
    if end == size:
        return
    rest = data[end:]
    if size - end < 4 and not any(rest) and (base_offset + size) % 4 == 0:
        return
    raise ImageFormatError(
        f"{what} has {size - end} unexpected trailing bytes", base_offset + end
    )


def field_error(what: str, path: str, offset: int) -> ImageFormatError:
    """The error for a field that does not fit or does not hold its constant, worded as a
    construct parse words it (`path` as construct names it, e.g. `entries -> image_id`)."""
    return ImageFormatError(f"{what} does not parse (Error in path (parsing) -> {path})", offset)
