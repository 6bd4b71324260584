"""`fwmodel serve-api`: serve the device REST API (what Microsoft's `azuresphere-device-api`
client calls) for the device `--hal` names, on loopback, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
from typing import TextIO

from firmware_model.api.pki import DEVICE_HOST
from firmware_model.api.server import serve
from firmware_model.cli.commands import Subparsers, on_device
from firmware_model.device.model import Device
from policy.cli import ExitCode, epilog
from policy.errors import UsageError
from policy.network import loopback_ip

DEFAULT_LISTEN = "127.0.0.1:0"
EPILOG = epilog({
    ExitCode.OK: "serve-api: stopped by Ctrl-C or SIGTERM once serving",
    ExitCode.REFUSED: "serve-api: the device does not boot, so it serves nothing",
    ExitCode.BAD_INPUT: "also an address off the loopback interface, a port in use, a device "
                        "not provisioned",
}, codes=(ExitCode.OK, ExitCode.REFUSED, ExitCode.BAD_INPUT, ExitCode.HARDWARE, ExitCode.BUSY,
          ExitCode.INTERRUPTED),
   extra="(Ctrl-C or SIGTERM while it is still starting, before its first line, is 130.)")


def listen_address(text: str) -> tuple[str, int]:
    """The loopback IP address and port (0..65535; 0: a free one) of `ADDRESS:PORT`;
    UsageError for anything else (`localhost` is 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {text!r}: expected 127.0.0.1:PORT (PORT 0..65535)")
    return loopback_ip(host, "--listen", "the device REST API"), int(port)


def register(commands: Subparsers) -> None:
    p = commands.add_parser(
        "serve-api", help="serve the device REST API on 127.0.0.1 (Microsoft's "
                          "azuresphere-device-api client drives it)",
        description="Serve the device REST API of the device --hal names over HTTPS on a "
                    "loopback address, with a certificate for " + DEVICE_HOST + " issued by a "
                    "lab CA made at start. The first line on stdout is "
                    "`https://127.0.0.1:PORT ca=PATH`: point the client at 127.0.0.1:PORT "
                    "(azuresphere_device_api.utils._CURRENT_DEVICE_IP) and PATH (its "
                    "_CERT_PATH), or curl --cacert PATH. Then one line per request. It holds "
                    "the device until Ctrl-C or SIGTERM (exit 0). Routes, shapes and error "
                    "codes: docs/device-api.md.",
        epilog=EPILOG)
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="127.0.0.1:PORT",
                   help="the loopback address and port to serve on (default: %(default)s, a "
                        "free port)")
    on_device(p, run)


def run(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    address, port = listen_address(str(args.listen))
    device.start()  # a device that does not boot serves nothing: its error, its exit code
    return serve(device, address, port, out)
