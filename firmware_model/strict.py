"""Strict parsing of payload declarations: every byte accounted for, errors typed."""

from __future__ import annotations

import io
from typing import Any

from construct import Construct, ConstructError

from firmware_model.errors import ImageFormatError
from firmware_model.sections import plain


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
    rest = data[stream.tell() :]
    padding = len(rest) < 4 and not any(rest) and (base_offset + len(data)) % 4 == 0
    if rest and not padding:
        raise ImageFormatError(
            f"{what} has {len(data) - stream.tell()} unexpected trailing bytes",
            base_offset + stream.tell(),
        )
    return result


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
