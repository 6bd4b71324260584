"""`fwmodel status`: what the device runs, its fuses, its store and its clock."""

from __future__ import annotations

import argparse
import contextlib
from typing import TextIO

from firmware_model.cli import render
from firmware_model.cli.commands import Subparsers, on_device
from firmware_model.device.model import Device
from firmware_model.device.status import device_status
from firmware_model.errors import FwModelError
from policy.cli import ExitCode, exit_code


def register(commands: Subparsers) -> None:
    p = commands.add_parser("status", help="active slots, store, security versions, reset cause")
    p.add_argument("--json", action="store_true")
    on_device(p, run)


def run(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    with contextlib.suppress(FwModelError):
        device.start()  # status reports a device that does not boot, then exits by why not
    status = device_status(device)
    if args.json:
        render.print_json(status, out)
    else:
        out.write("\n".join(render.status_text(status)) + "\n")
    failure = device.boot_failure
    return ExitCode.OK if device.ram is not None or failure is None else exit_code(failure)
