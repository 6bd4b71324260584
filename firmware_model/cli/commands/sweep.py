"""`fwmodel sweep`: cut power at every flash operation of an update, on its own machine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from firmware_model.agent.feed import CHANNELS
from firmware_model.agent.sweep import SweepImages, sweep_update
from firmware_model.cli import render
from firmware_model.cli.commands import Subparsers, on_host
from firmware_model.cli.options import DEFAULT_IMAGES
from firmware_model.cli.progress import SweepBar
from hal.soft.power_cuts import CutMode
from policy.cli import ExitCode
from policy.errors import UsageError


def register(commands: Subparsers) -> None:
    p = commands.add_parser("sweep", help="cut power at every flash op of an update (own "
                                          "in-memory machine; --hal is not used)")
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES,
                   help="build folder: factory images and feeds/ (default: %(default)s)")
    p.add_argument("--channel", choices=CHANNELS, default="Retail")
    p.add_argument("--modes", default=",".join(m.value for m in CutMode),
                   help="cut modes, comma-separated (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print only the JSON report")
    on_host(p, run)


def cut_modes(text: str) -> list[CutMode]:
    """The cut modes a comma-separated --modes names, each once; UsageError if none."""
    try:
        modes = [CutMode(m.strip()) for m in text.split(",") if m.strip()]
    except ValueError:
        raise UsageError(f"--modes {text!r}: expected before, after, torn") from None
    if not modes:
        raise UsageError(f"--modes {text!r}: name at least one of before, after, torn")
    return list(dict.fromkeys(modes))


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    modes = cut_modes(str(args.modes))
    progress = SweepBar(err) if not args.json and err.isatty() else None
    report = sweep_update(SweepImages.from_build(args.images, args.channel), modes=modes,
                          progress=progress)
    if args.json:
        render.print_json(report.to_json(), out)
    else:
        out.write("\n".join(render.sweep_text(report)) + "\n")
    return ExitCode.OK if report.ok else ExitCode.REFUSED
