"""`fwmodel revoke`: blow the fuses that refuse a component's older security versions."""

from __future__ import annotations

import argparse
from typing import TextIO

from firmware_model.cli.commands import Subparsers, on_device
from firmware_model.device.model import Device
from firmware_model.trust.components import Component


def register(commands: Subparsers) -> None:
    p = commands.add_parser("revoke", help="revoke a component's security versions below N")
    p.add_argument("component", choices=[c.value for c in Component])
    p.add_argument("version", type=int)
    on_device(p, run)


def run(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    device.start()
    component = Component(args.component)
    blown = device.revoke(component, args.version)
    state = "fuses blown" if blown else "already revoked"
    out.write(f"{component.value} security versions below {args.version} revoked ({state})\n")
    return 0
