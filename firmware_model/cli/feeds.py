"""The feed and app options `fwmodel update` and `fwmodel run` share, and the feed they name."""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

from firmware_model.agent.feed import CHANNELS, Feed, open_feed
from firmware_model.agent.updater import CHECK_DEADLINE_S
from firmware_model.cli.options import minutes, seconds
from firmware_model.device.model import Device
from firmware_model.device.sysevent import DeferringApp
from firmware_model.errors import ImageFormatError


def add_feed_options(p: argparse.ArgumentParser) -> None:
    """--feed, --channel, --defer, --resume-after, --feed-ca, --deadline."""
    p.add_argument("--feed", required=True, metavar="DIR_OR_URL",
                   help="a feed folder or http(s)://127.0.0.1 URL (a channel's, or holding one "
                        "folder per channel)")
    p.add_argument("--channel", choices=CHANNELS, help="default: Retail")
    p.add_argument("--defer", type=minutes, default=0.0, metavar="MINUTES",
                   help="an app defers the install (at most 1440 minutes; longer is truncated)")
    p.add_argument("--resume-after", type=minutes, metavar="MINUTES",
                   help="the app resumes the deferred install after MINUTES")
    p.add_argument("--feed-ca", type=Path, metavar="PEM",
                   help="trust these roots for an https feed instead of the device's store")
    p.add_argument("--deadline", type=seconds, default=CHECK_DEADLINE_S, metavar="SECONDS",
                   help="the most a check may take to fetch the manifest and its images "
                        "(default: %(default)s; then exit 3)")


def feed_of(device: Device, args: argparse.Namespace) -> Feed:
    """The feed the options name, with the deferring app they ask for registered on the
    device (which must be running: an https feed is checked with its store)."""
    if args.defer or args.resume_after is not None:
        device.bus.register(DeferringApp(args.defer, args.resume_after))
    context = None
    if str(args.feed).startswith("https:"):
        context = feed_context(args.feed_ca) if args.feed_ca else device.ssl_context()
    return open_feed(args.feed, args.channel, ssl_context=context)


def feed_context(cafile: Path) -> ssl.SSLContext:
    """A host-side context trusting the roots in `cafile` (checked at the host's clock).

    ImageFormatError if it holds no PEM certificate; an OSError naming it if it cannot be read.
    """
    try:
        return ssl.create_default_context(cafile=str(cafile))
    except (ssl.SSLError, ValueError):
        raise ImageFormatError(f"{cafile} holds no PEM certificates") from None
    except OSError as error:  # ssl's own OSError does not say which file
        raise OSError(error.errno, error.strerror, str(cafile)) from None
