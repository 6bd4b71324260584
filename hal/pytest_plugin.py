"""pytest plugin: pick the HAL backend the `machine` fixture runs on (work in progress)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add `--hal fake|emulator|serial:PORT`."""
    parser.getgroup("sphere-hal").addoption(
        "--hal", default="fake", metavar="fake|emulator|serial:PORT",
        help="HAL backend for the `machine` fixture (default: fake)",
    )
