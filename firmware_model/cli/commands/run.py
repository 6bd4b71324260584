"""`fwmodel run`: run the device for some hours of its clock, connected to a feed, checking for
updates on Microsoft's schedule (at the first connection after a reset, then every 20 hours)."""

from __future__ import annotations

import argparse
import math
from typing import TextIO

from firmware_model.agent.schedule import (
    MAX_RUN_HOURS,
    RunReport,
    ScheduledCheck,
    check_scheduling,
    run_schedule,
)
from firmware_model.agent.updater import CHECK_INTERVAL_HOURS, AgentSettings, Updater
from firmware_model.cli import render
from firmware_model.cli.commands import Subparsers, on_device
from firmware_model.cli.feeds import APPS_HELP, add_feed_options, apps_of, feed_of
from firmware_model.device.model import Device
from firmware_model.device.status import OS_VERSION
from policy.cli import ExitCode, exit_code
from policy.errors import UsageError


def hours(text: str) -> float:
    """A number of hours, 0..MAX_RUN_HOURS (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_RUN_HOURS):
        raise argparse.ArgumentTypeError(f"{text!r}: hours must be 0..{MAX_RUN_HOURS:g}")
    return value


def interval(text: str) -> float:
    """A check interval in hours, > 0 (argparse type)."""
    value = hours(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the interval must be more than 0 hours")
    return value


def register(commands: Subparsers) -> None:
    p = commands.add_parser(
        "run", help="run the device N hours of its clock, checking a feed on its schedule",
        description="Connect the device to a feed for --hours of device time: it checks at "
                    "once (its first connection since it booted), then every "
                    "--interval-hours; an update that installs resets it, and it checks again "
                    "at once. Each check is printed with its device time and outcome.\n\n"
                    + APPS_HELP)
    add_feed_options(p)
    p.add_argument("--hours", type=hours, required=True, metavar="N",
                   help=f"hours of device time to run (0..{MAX_RUN_HOURS:g}; a check due at "
                        "the end is made)")
    p.add_argument("--interval-hours", type=interval, default=CHECK_INTERVAL_HOURS,
                   metavar="H", help="hours between checks (default: %(default)g, Microsoft's "
                                     "current figure; older pages say 24)")
    p.add_argument("--json", action="store_true",
                   help="print the whole run as JSON at its end (text prints each check as it "
                        "ends)")
    on_device(p, run)


def run(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    try:
        check_scheduling(args.hours, args.interval_hours)
    except ValueError as error:
        raise UsageError(str(error)) from None
    apps_of(args)  # two apps of one name: refused before the device is touched
    device.start()
    feed = feed_of(device, args)
    settings = AgentSettings(check_interval_hours=args.interval_hours,
                             check_deadline_s=args.deadline)

    def tell(check: ScheduledCheck) -> None:
        if not args.json:
            out.write(render.check_text(check, args.interval_hours) + "\n")
            out.flush()

    report = run_schedule(Updater(device, settings), feed, args.hours, tell)
    reset = device.machine.reset
    boots, uptime = reset.boot_count(), reset.uptime()
    if args.json:
        render.print_json({**report.to_json(), "os_version": OS_VERSION, "boot_count": boots,
                           "uptime_s": None if uptime is None else round(uptime, 3)}, out)
    else:
        out.write("\n".join(render.run_text(report, boots, uptime)) + "\n")
    return run_code(report)


def run_code(report: RunReport) -> int:
    """0 if every check went well; else the exit code of the first that did not (an update
    that reverted at its trial boot: 1, refused; as a device that no longer boots)."""
    for check in report.checks:
        if check.error is not None:
            return exit_code(check.error)
        if check.outcome == "reverted":
            return ExitCode.REFUSED
    return ExitCode.OK if report.halted is None else exit_code(report.halted)
