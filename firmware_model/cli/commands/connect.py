"""`fwmodel connect`: one TLS handshake from the device, with its store at its clock."""

from __future__ import annotations

import argparse
from typing import TextIO

from firmware_model.cli import render
from firmware_model.cli.commands import Subparsers, on_device
from firmware_model.cli.options import address
from firmware_model.device.model import Device
from firmware_model.errors import FwModelError
from policy.errors import UsageError
from policy.network import host_name, is_loopback


def register(commands: Subparsers) -> None:
    p = commands.add_parser(
        "connect", help="TLS handshake from the device (exit 0: it held, 1: it failed, "
                        "2: a bad HOST:PORT; see below)",
        description="One TLS handshake from the device, verified with its store at its clock. "
                    "Exit 0: the handshake held; 1: it failed; 2: HOST:PORT is not an address "
                    "(or another usage error); 4: the HAL failed.")
    p.add_argument("address", metavar="HOST:PORT")
    p.add_argument("--server-name", type=server_name, metavar="NAME",
                   help="the name to verify (default: HOST): a host name or an IP address")
    p.add_argument("--json", action="store_true")
    on_device(p, run)


def server_name(text: str) -> str:
    """An argument type: a name a certificate can carry (argparse's one-line usage error)."""
    try:
        return host_name(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    host, port = address(str(args.address))
    if not is_loopback(host):
        raise UsageError(f"{host}: the model connects to loopback addresses only (serve the "
                         "endpoint on 127.0.0.1, e.g. with lab-server, and connect to it there)")
    device.start()
    try:
        session = device.connect(host, port, args.server_name)
    except FwModelError as error:
        if not args.json:
            raise
        # the answer a script asked for, a failure included (the line on stderr stays)
        render.print_json({"connected": False, "host": host, "port": port,
                           "server_name": args.server_name or host,
                           "error": {"type": type(error).__name__, "message": str(error)}}, out)
        out.flush()
        raise
    if args.json:
        render.print_json({"connected": True, **session.to_json(),
                           "server_name": args.server_name or host}, out)
    else:
        out.write(f"connected to {session.describe()}\n")
    return 0
