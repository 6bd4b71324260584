"""`fwmodel update`: check a feed and install what it offers, through the reboot, with the apps
the user describes (`--app`, `--defer`) told of it and deferring it as SysEvent lets them."""

from __future__ import annotations

import argparse
from typing import TextIO

from firmware_model.agent.updater import AgentSettings, UpdateOutcome, Updater
from firmware_model.cli import render
from firmware_model.cli.commands import Subparsers, on_device
from firmware_model.cli.feeds import APPS_HELP, add_feed_options, apps_of, feed_of
from firmware_model.device.model import Device
from policy.cli import ExitCode

DESCRIPTION = "Check a feed and install what it offers, through the reboot.\n\n" + APPS_HELP


def register(commands: Subparsers) -> None:
    p = commands.add_parser("update", help="check a feed and install what it offers",
                            description=DESCRIPTION)
    add_feed_options(p)
    p.add_argument("--json", action="store_true")
    on_device(p, run)


def run(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    apps_of(args)  # two apps of one name: refused before the device is touched
    device.start()
    feed = feed_of(device, args)
    result = Updater(device, AgentSettings(check_deadline_s=args.deadline)).check_for_update(feed)
    if args.json:
        render.print_json(result.to_json(), out)
    else:
        out.write("\n".join(render.update_text(result)) + "\n")
    # a new set that failed its trial boot: the device runs what it ran, the update did not take
    return ExitCode.REFUSED if result.outcome is UpdateOutcome.REVERTED else ExitCode.OK
