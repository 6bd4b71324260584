"""`fwmodel`: provision, inspect, update and connect a device model; manage its app
certificate store; serve its device REST API; sweep power cuts.

Each device command opens the machine `--hal` names (`hal.backends`), attaches the device model
to it (booting it from what its flash and fuses hold), does its work and closes the machine.
The commands are in `firmware_model.cli.commands`, one module each. Errors become one line on
stderr and the exit code of their kind (`policy.cli`, see the epilog).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from firmware_model.cli.commands import (
    certstore,
    connect,
    provision,
    revoke,
    run,
    serve_api,
    status,
    sweep,
    update,
)
from firmware_model.cli.options import seconds
from firmware_model.cli.progress import ConsoleEcho, FlashBars
from firmware_model.device.model import Device
from firmware_model.device.status import interrupted_state
from hal.backends import DEFAULT_FLASH, GRAMMAR, open_machine, parse_hal
from policy.cli import ExitCode, OneLineParser, epilog, iso_datetime, run_guarded
from policy.interrupts import interrupts_deferred

PROG = "fwmodel"
#: Seconds a command waits for a device another process is using.
DEFAULT_WAIT = 5.0
#: The command modules, in the order `--help` lists them.
COMMANDS = (provision, status, update, run, connect, certstore, serve_api, revoke, sweep)

EPILOG = epilog({
    ExitCode.OK: "connect: the handshake held; sweep: no invariant violated",
    ExitCode.REFUSED: "also an update that reverted at its trial boot, status of a device "
                      "that does not boot; run: the first check that failed gives the code; "
                      "sweep: a violated invariant",
    ExitCode.BAD_INPUT: "also an image or manifest over its size limit, no device at FLASH "
                        "(only provision creates one), a device not provisioned (or provisioned "
                        "already)",
    ExitCode.BUSY: "another fwmodel or emulator holds the device's files (see --wait)",
})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (`fwmodel --help` shows the exit codes)."""
    top = OneLineParser(prog=PROG, description="A model of an Azure Sphere MT3620 update agent.",
                        epilog=EPILOG)
    top.add_argument("--hal", default=f"fake:{DEFAULT_FLASH}", metavar=GRAMMAR,
                     help="the machine the device runs on (default: %(default)s)")
    top.add_argument("--at", type=iso_datetime, metavar="DATETIME",
                     help="set the device's clock first (ISO 8601, UTC; software machines, "
                          "whose clock otherwise goes on from the last run)")
    top.add_argument("--wait", type=seconds, default=DEFAULT_WAIT, metavar="SECONDS",
                     help="how long to wait for a device another process is using before "
                          "giving up with exit 5 (default: %(default)s)")
    top.add_argument("-v", "--verbose", action="store_true",
                     help="print the device's console lines on stderr as it logs them")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return top


@dataclass
class _Interrupted:
    """What the device was left as when the command was interrupted (for its last line)."""

    state: str | None = None


def _on_device(args: argparse.Namespace, out: TextIO, err: TextIO, note: _Interrupted) -> int:
    create = args.command == "provision"  # the one command that may make a new device
    bars = FlashBars(err) if err.isatty() and not getattr(args, "json", False) else None
    echo = ConsoleEcho(err) if args.verbose else None
    with open_machine(parse_hal(args.hal), args.at, create=create, lock_wait=args.wait,
                      progress=bars, console=echo) as machine:
        device = Device(machine)
        before = device.record_area.read(machine.flash)
        left = getattr(args, "interrupted_state", None) or interrupted_state
        try:
            result: int = args.run(device, args, out)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a power cut, and say where it left us
            note.state = left(device, before)
            raise
        finally:
            if bars is not None:
                bars.close()
        with interrupts_deferred():  # done: an interrupt from here on says what it left
            note.state = left(device, before)
        return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run `fwmodel` with `argv`; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not args.on_device:  # sys.stdout looked up in the body: run_guarded guards it
        return run_guarded(PROG, lambda: int(args.run(args, sys.stdout, sys.stderr)))
    note = _Interrupted()
    return run_guarded(PROG, lambda: _on_device(args, sys.stdout, sys.stderr, note),
                       on_interrupt=lambda: note.state)


if __name__ == "__main__":
    sys.exit(main())
