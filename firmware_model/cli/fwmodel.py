"""`fwmodel`: provision, inspect, update and connect a device model; sweep power cuts.

Each command opens the machine `--hal` names (`hal.backends`), attaches the device model to it
(booting it from what its flash and fuses hold), does its work and closes the machine. Errors
become one line on stderr and the exit code of their kind (`policy.cli`, see the epilog).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from firmware_model.agent.feed import CHANNELS, open_feed
from firmware_model.agent.sweep import SweepImages, sweep_update
from firmware_model.agent.updater import CHECK_DEADLINE_S, AgentSettings, UpdateOutcome, Updater
from firmware_model.cli import render
from firmware_model.device.model import Device
from firmware_model.device.provision import (
    KEYSTORE_FILE,
    STORE_FILE,
    FactoryImages,
    parse_root_hash,
)
from firmware_model.device.status import device_status, interrupted_state
from firmware_model.device.sysevent import DeferringApp
from firmware_model.errors import FwModelError, ImageFormatError
from firmware_model.trust.components import Component
from hal.backends import DEFAULT_FLASH, GRAMMAR, open_machine, parse_hal
from hal.errors import HalError
from hal.soft.power_cuts import CutMode
from policy.cli import ExitCode, OneLineParser, epilog, exit_code, iso_datetime, run_guarded
from policy.errors import UsageError
from policy.network import is_loopback

PROG = "fwmodel"
DEFAULT_IMAGES = "images/build"
#: Seconds a command waits for a device another process is using.
DEFAULT_WAIT = 5.0

EPILOG = epilog({
    ExitCode.OK: "connect: the handshake held; sweep: no invariant violated",
    ExitCode.REFUSED: "also an update that reverted at its trial boot, status of a device "
                      "that does not boot; sweep: a violated invariant",
    ExitCode.BAD_INPUT: "also an image or manifest over its size limit, no device at FLASH "
                        "(only provision creates one), a device not provisioned (or provisioned "
                        "already)",
    ExitCode.BUSY: "another fwmodel or emulator holds the device's files (see --wait)",
})




def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be >= 0")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: minutes must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (`fwmodel --help` shows the exit codes)."""
    top = OneLineParser(prog=PROG, description="A model of an Azure Sphere MT3620 update agent.",
                        epilog=EPILOG)
    top.add_argument("--hal", default=f"fake:{DEFAULT_FLASH}", metavar=GRAMMAR,
                     help="the machine the device runs on (default: %(default)s)")
    top.add_argument("--at", type=iso_datetime, metavar="DATETIME",
                     help="set the device's clock first (ISO 8601, UTC; software machines, "
                          "whose clock otherwise goes on from the last run)")
    top.add_argument("--wait", type=_seconds, default=DEFAULT_WAIT, metavar="SECONDS",
                     help="how long to wait for a device another process is using before "
                          "giving up with exit 5 (default: %(default)s)")
    top.add_argument("-v", "--verbose", action="store_true",
                     help="print the device's console lines of this run on stderr")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("provision", help="fuse the root-key hash, write keystore and store")
    p.add_argument("--images", type=Path, default=Path(DEFAULT_IMAGES),
                   help="build folder (default: %(default)s)")
    p.add_argument("--root-hash", help="64 hex digits (default: IMAGES/keys/root.hash)")
    p.add_argument("--keystore", type=Path, help=f"default: IMAGES/{KEYSTORE_FILE}")
    p.add_argument("--store", type=Path, help=f"default: IMAGES/{STORE_FILE}")

    p = commands.add_parser("status", help="active slots, store, security versions, reset cause")
    p.add_argument("--json", action="store_true")

    p = commands.add_parser("update", help="check a feed and install what it offers")
    p.add_argument("--feed", required=True, metavar="DIR_OR_URL",
                   help="a feed folder or http(s)://127.0.0.1 URL (a channel's, or holding one "
                        "folder per channel)")
    p.add_argument("--channel", choices=CHANNELS, help="default: Retail")
    p.add_argument("--defer", type=_minutes, default=0.0, metavar="MINUTES",
                   help="an app defers the install (at most 1440 minutes; longer is truncated)")
    p.add_argument("--resume-after", type=_minutes, metavar="MINUTES",
                   help="the app resumes the deferred install after MINUTES")
    p.add_argument("--feed-ca", type=Path, metavar="PEM",
                   help="trust these roots for an https feed instead of the device's store")
    p.add_argument("--deadline", type=_seconds, default=CHECK_DEADLINE_S, metavar="SECONDS",
                   help="the most the whole check may take to fetch the manifest and its images "
                        "(default: %(default)s; then exit 3)")
    p.add_argument("--json", action="store_true")

    p = commands.add_parser(
        "connect", help="TLS handshake from the device (exit 0: it held, 1: it failed, "
                        "2: a bad HOST:PORT; see below)",
        description="One TLS handshake from the device, verified with its store at its clock. "
                    "Exit 0: the handshake held; 1: it failed; 2: HOST:PORT is not an address "
                    "(or another usage error); 4: the HAL failed.")
    p.add_argument("address", metavar="HOST:PORT")
    p.add_argument("--server-name", help="the name to verify (default: HOST)")
    p.add_argument("--json", action="store_true")

    p = commands.add_parser("revoke", help="revoke a component's security versions below N")
    p.add_argument("component", choices=[c.value for c in Component])
    p.add_argument("version", type=int)

    p = commands.add_parser("sweep", help="cut power at every flash op of an update (own "
                                          "in-memory machine; --hal is not used)")
    p.add_argument("--images", type=Path, default=Path(DEFAULT_IMAGES),
                   help="build folder: factory images and feeds/ (default: %(default)s)")
    p.add_argument("--channel", choices=CHANNELS, default="Retail")
    p.add_argument("--modes", default=",".join(m.value for m in CutMode),
                   help="cut modes, comma-separated (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print only the JSON report")
    return top


# -- commands ----------------------------------------------------------------------------------


def _factory(args: argparse.Namespace) -> FactoryImages:
    """The build folder's factory images, with --root-hash, --keystore, --store instead
    (those files relative to the working directory)."""
    return FactoryImages.from_build(
        args.images,
        args.keystore.absolute() if args.keystore else KEYSTORE_FILE,
        args.store.absolute() if args.store else STORE_FILE,
        root_hash=parse_root_hash(args.root_hash) if args.root_hash else None)


def _provision(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    device.provision(_factory(args))
    loaded = device.running.loaded
    out.write(f"provisioned: keystore {loaded.keystore_image.name}, store "
              f"{loaded.store_image.name} ({len(loaded.store.roots)} roots) in slot A\n")
    return 0


def _status(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    with contextlib.suppress(FwModelError):
        device.start()  # status reports a device that does not boot, then exits by why not
    status = device_status(device)
    if args.json:
        render.print_json(status, out)
    else:
        out.write("\n".join(render.status_text(status)) + "\n")
    failure = device.boot_failure
    return ExitCode.OK if device.ram is not None or failure is None else exit_code(failure)


def _update(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    device.start()
    if args.defer or args.resume_after is not None:
        device.bus.register(DeferringApp(args.defer, args.resume_after))
    context = None
    if str(args.feed).startswith("https:"):
        context = _feed_context(args.feed_ca) if args.feed_ca else device.ssl_context()
    feed = open_feed(args.feed, args.channel, ssl_context=context)
    result = Updater(device, AgentSettings(check_deadline_s=args.deadline)).check_for_update(feed)
    if args.json:
        render.print_json(result.to_json(), out)
    else:
        out.write("\n".join(render.update_text(result)) + "\n")
    # a new set that failed its trial boot: the device runs what it ran, the update did not take
    return ExitCode.REFUSED if result.outcome is UpdateOutcome.REVERTED else ExitCode.OK


def _feed_context(cafile: Path) -> ssl.SSLContext:
    """A host-side context trusting the roots in `cafile` (checked at the host's clock).

    ImageFormatError if it holds no PEM certificate; an OSError naming it if it cannot be read.
    """
    try:
        return ssl.create_default_context(cafile=str(cafile))
    except (ssl.SSLError, ValueError):
        raise ImageFormatError(f"{cafile} holds no PEM certificates") from None
    except OSError as error:  # ssl's own OSError does not say which file
        raise OSError(error.errno, error.strerror, str(cafile)) from None


def _address(text: str) -> tuple[str, int]:
    """HOST and PORT (1..65535) from `HOST:PORT` (`[v6]:PORT` too); UsageError."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"{text!r} is not HOST:PORT")
    if not 0 < int(port) < 65536:
        raise UsageError(f"{text!r}: the port must be 1..65535")
    return host.strip("[]"), int(port)


def _connect(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    host, port = _address(str(args.address))
    if not is_loopback(host):
        raise UsageError(f"{host}: the model connects to loopback addresses only (serve the "
                         "endpoint on 127.0.0.1, e.g. with tools/lab_server.py)")
    device.start()
    session = device.connect(host, port, args.server_name)
    if args.json:
        render.print_json(session.to_json(), out)
    else:
        out.write(f"connected to {session.describe()}\n")
    return 0


def _revoke(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    device.start()
    component = Component(args.component)
    blown = device.revoke(component, args.version)
    state = "fuses blown" if blown else "already revoked"
    out.write(f"{component.value} security versions below {args.version} revoked ({state})\n")
    return 0


def _cut_modes(text: str) -> list[CutMode]:
    """The cut modes a comma-separated --modes names, each once; UsageError if none."""
    try:
        modes = [CutMode(m.strip()) for m in text.split(",") if m.strip()]
    except ValueError:
        raise UsageError(f"--modes {text!r}: expected before, after, torn") from None
    if not modes:
        raise UsageError(f"--modes {text!r}: name at least one of before, after, torn")
    return list(dict.fromkeys(modes))


def _sweep(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    modes = _cut_modes(str(args.modes))
    progress = render.ProgressBar(err) if not args.json and err.isatty() else None
    report = sweep_update(SweepImages.from_build(args.images, args.channel), modes=modes,
                          progress=progress)
    if args.json:
        render.print_json(report.to_json(), out)
    else:
        out.write("\n".join(render.sweep_text(report)) + "\n")
    return ExitCode.OK if report.ok else ExitCode.REFUSED


DeviceCommand = Callable[[Device, argparse.Namespace, TextIO], int]
COMMANDS: dict[str, DeviceCommand] = {
    "provision": _provision, "status": _status, "update": _update, "connect": _connect,
    "revoke": _revoke,
}


@dataclass
class _Interrupted:
    """What the device was left as when the command was interrupted (for its last line)."""

    state: str | None = None


def _on_device(args: argparse.Namespace, out: TextIO, err: TextIO, note: _Interrupted) -> int:
    create = args.command == "provision"  # the one command that may make a new device
    with open_machine(parse_hal(args.hal), args.at, create=create,
                      lock_wait=args.wait) as machine:
        first_line = len(machine.console.lines()) if args.verbose else 0
        device = Device(machine)
        before = device.record_area.read(machine.flash)
        try:
            return COMMANDS[args.command](device, args, out)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a power cut, and say where it left us
            note.state = interrupted_state(device, before)
            raise
        finally:
            if args.verbose:
                with contextlib.suppress(HalError):
                    for line in machine.console.lines()[first_line:]:
                        err.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `fwmodel` with `argv`; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "sweep":  # sys.stdout looked up in the body: run_guarded guards it
        return run_guarded(PROG, lambda: _sweep(args, sys.stdout, sys.stderr))
    note = _Interrupted()
    return run_guarded(PROG, lambda: _on_device(args, sys.stdout, sys.stderr, note),
                       on_interrupt=lambda: note.state)


if __name__ == "__main__":
    sys.exit(main())
