"""Strict parsing of payload declarations: every byte accounted for, errors typed.

Two readers share the rules here: construct declarations parsed strictly (`parse_strict`,
`parse_prefix`) and the struct decoders of `fastparse`, which word their errors the same way
(`field_error`) and apply the same trailing-bytes rule (`check_trailing`).
"""

from __future__ import annotations

import io
from typing import Any

from construct import Construct, ConstructError

from firmware_model.errors import ImageFormatError
from firmware_model.image.sections import plain


def parse_prefix(fmt: Construct, data: bytes, what: str) -> tuple[dict[str, Any], int]:
    """Parse the start of `data` with `fmt`: the value and how many bytes it took."""
    stream = io.BytesIO(data)
    value = _parse(fmt, stream, what, 0)
    return value, stream.tell()


def parse_strict(fmt: Construct, data: bytes, what: str, base_offset: int = 0) -> dict[str, Any]:
    """Parse all of `data` with `fmt`; ImageFormatError (with an offset) on any problem.

    The only bytes allowed after the value are the zero padding (to a multiple of 4 of the
    whole payload) that the image envelope adds. The offset of an error is where the parser
    stood when it gave up, relative to `base_offset`.
    """
    stream = io.BytesIO(data)
    result = _parse(fmt, stream, what, base_offset)
    check_trailing(data, stream.tell(), what, base_offset)
    return result


def check_trailing(
    data: bytes | memoryview, end: int, what: str, base_offset: int = 0
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


def _parse(fmt: Construct, stream: io.BytesIO, what: str, base_offset: int) -> dict[str, Any]:
    try:
        value = fmt.parse_stream(stream)
    except (ConstructError, UnicodeDecodeError, ValueError, OverflowError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageFormatError(
            f"{what} does not parse ({detail})", base_offset + stream.tell()
        ) from None
    result = plain(value)
    assert isinstance(result, dict)
    return result
