"""The construct declarations parsed the slow, obvious way: the reference the derived readers
of `firmware_model.image.derive` are held to (tests only)."""

from __future__ import annotations

import io
from typing import Any

from construct import Construct, ConstructError

from firmware_model.errors import ImageFormatError
from firmware_model.image.strict import check_trailing


def plain(value: Any) -> Any:
    """A construct Container turned into plain dicts/lists, hidden `_` keys dropped."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def parse_prefix(fmt: Construct, data: bytes, what: str) -> tuple[dict[str, Any], int]:
    """Parse the start of `data` with `fmt`: the value and how many bytes it took."""
    stream = io.BytesIO(data)
    value = _parse(fmt, stream, what, 0)
    return value, stream.tell()


def parse_strict(fmt: Construct, data: bytes, what: str, base_offset: int = 0) -> dict[str, Any]:
    """Parse all of `data` with `fmt`; ImageFormatError (with an offset) on any problem: where
    the parser stood when it gave up, relative to `base_offset`. Only envelope padding may
    follow the value."""
    stream = io.BytesIO(data)
    result = _parse(fmt, stream, what, base_offset)
    check_trailing(data, stream.tell(), what, base_offset)
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
