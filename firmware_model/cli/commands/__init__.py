"""The `fwmodel` commands, one module each.

Each module has `register(commands)`, which adds its sub-parser to `commands` (the result of
`add_subparsers`) with `run` set by `set_defaults`: `run(device, args, out)` for a command on
the device `--hal` names, or `run(args, out, err)` with `on_device=False` for one that makes its
own machines (the sweep). A device command may also set `interrupted_state(device, before)`:
what an interrupted run (a power cut) left, for its last line, when the boot record alone
(`device.status.interrupted_state`, the default) does not say it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TextIO, TypeAlias

from firmware_model.device.model import Device

DeviceCommand = Callable[[Device, argparse.Namespace, TextIO], int]
HostCommand = Callable[[argparse.Namespace, TextIO, TextIO], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def on_device(parser: argparse.ArgumentParser, run: DeviceCommand) -> None:
    """`parser`'s command runs on the device `--hal` names."""
    parser.set_defaults(run=run, on_device=True)


def on_host(parser: argparse.ArgumentParser, run: HostCommand) -> None:
    """`parser`'s command makes its own machines (`--hal` is not used)."""
    parser.set_defaults(run=run, on_device=False)
