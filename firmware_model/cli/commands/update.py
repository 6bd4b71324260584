"""`fwmodel update`: check a feed and install what it offers, through the reboot."""

from __future__ import annotations

import argparse
from typing import TextIO

from firmware_model.agent.updater import AgentSettings, UpdateOutcome, Updater
from firmware_model.cli import render
from firmware_model.cli.commands import Subparsers, on_device
from firmware_model.cli.feeds import add_feed_options, feed_of
from firmware_model.device.model import Device
from policy.cli import ExitCode


def register(commands: Subparsers) -> None:
    p = commands.add_parser("update", help="check a feed and install what it offers")
    add_feed_options(p)
    p.add_argument("--json", action="store_true")
    on_device(p, run)


def run(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    device.start()
    feed = feed_of(device, args)
    result = Updater(device, AgentSettings(check_deadline_s=args.deadline)).check_for_update(feed)
    if args.json:
        render.print_json(result.to_json(), out)
    else:
        out.write("\n".join(render.update_text(result)) + "\n")
    # a new set that failed its trial boot: the device runs what it ran, the update did not take
    return ExitCode.REFUSED if result.outcome is UpdateOutcome.REVERTED else ExitCode.OK
