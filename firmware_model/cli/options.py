"""Argument types and defaults the `fwmodel` commands share."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from policy.errors import UsageError

DEFAULT_IMAGES = Path("images/build")


def _amount(text: str, unit: str) -> float:
    """A finite number of `unit` >= 0 (argparse's error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r}: {unit} must be >= 0")
    return value


def seconds(text: str) -> float:
    """A number of seconds >= 0 (argparse type)."""
    return _amount(text, "seconds")


def minutes(text: str) -> float:
    """A number of minutes >= 0 (argparse type)."""
    return _amount(text, "minutes")


def whole_minutes(text: str) -> int:
    """A whole number of minutes, 0..4294967295 (SysEvent_DeferEvent takes a uint32_t)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{text!r}: minutes must be 0..4294967295")
    return value


def address(text: str) -> tuple[str, int]:
    """HOST and PORT (1..65535) from `HOST:PORT` (`[v6]:PORT` too); UsageError."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"{text!r} is not HOST:PORT")
    if not 0 < int(port) < 65536:
        raise UsageError(f"{text!r}: the port must be 1..65535")
    return host.strip("[]"), int(port)
