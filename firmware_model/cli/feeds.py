"""The feed and app options `fwmodel update` and `fwmodel run` share: the feed they name, and
the apps on the device (SysEvent) they describe."""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass
from pathlib import Path

from firmware_model.agent.feed import CHANNELS, Feed, open_feed
from firmware_model.agent.updater import CHECK_DEADLINE_S
from firmware_model.cli.options import minutes, seconds, whole_minutes
from firmware_model.device.appmanifest import AppManifest, read_app_manifest
from firmware_model.device.deferral import DeferringApp
from firmware_model.device.model import Device
from firmware_model.errors import AppManifestError, ImageFormatError
from policy.errors import UsageError
from policy.files import read_regular_text

#: The name of the app `--defer`/`--resume-after` describe.
DEFER_APP = "deferring-app"

APPS_HELP = """\
Apps on the device (SysEvent, as Microsoft documents it):
  --app MANIFEST[:defer=MIN[,MIN...]][:resume-after=MIN]     (repeatable)
      an app with its own app_manifest.json. It is told of the update only with
      "SystemEventNotifications": true in its Capabilities (else its registration fails with
      EACCES), and may defer or resume only with "SoftwareUpdateDeferral": true as well (else
      DeferEvent/ResumeEvent fail with EACCES). On the n-th Pending it defers by the n-th MIN
      (0, or none left: it lets the update go); resume-after=MIN: its timer calls ResumeEvent MIN
      minutes after the first Pending (refused with EINVAL unless a deferral of its own is then
      in force). Example: --app a.json:defer=60,60 --app b.json:resume-after=0
  --defer MIN [--resume-after MIN]: the same for one app ("deferring-app") with both
      capabilities.

A system update may be deferred 1440 minutes in all, counted from when the device learned of it
(UpdateStarted), over as many deferrals as the apps ask for: a longer one is truncated to what
is left. When every deferral in force has run out the apps get Pending again (with the minutes
left); when none defers within Pending's 10 seconds, or the last deferral in force is resumed,
or less than a minute is left, Final follows, and the install (a reboot) 10 s after Final.
Every app registered is sent Deferred for each deferral granted; no Complete for a system
update. The output lists what each app was told and its calls, with device times, and the time
deferred in all. The deferral lives in this run: the device's clock is moved through it (see
docs/device.md, SysEvent)."""


@dataclass(frozen=True)
class AppSpec:
    """An app `--app` describes: its manifest and its deferral wishes."""

    manifest: AppManifest
    defers: tuple[int, ...] = ()
    resume_after: float | None = None


def app_spec(text: str) -> AppSpec:
    """`MANIFEST[:defer=MIN[,MIN...]][:resume-after=MIN]` (argparse type; reads MANIFEST)."""
    parts = text.split(":")
    options: dict[str, str] = {}
    while len(parts) > 1 and "=" in parts[-1]:
        key, _, value = parts.pop().partition("=")
        if key not in ("defer", "resume-after"):
            raise argparse.ArgumentTypeError(
                f"{text!r}: unknown app option {key!r} (expected defer=MIN[,MIN...] or "
                "resume-after=MIN)")
        if key in options:
            raise argparse.ArgumentTypeError(f"{text!r}: {key}= given twice")
        options[key] = value
    if not ":".join(parts):
        raise argparse.ArgumentTypeError(f"{text!r}: name the app's manifest first")
    path = Path(":".join(parts))
    try:
        defers = tuple(whole_minutes(v) for v in options["defer"].split(",")) \
            if "defer" in options else ()
        resume = minutes(options["resume-after"]) if "resume-after" in options else None
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    try:
        manifest = read_app_manifest(path)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"{path}: {error.strerror or error}") from None
    except AppManifestError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return AppSpec(manifest, defers, resume)


def add_feed_options(p: argparse.ArgumentParser) -> None:
    """--feed, --channel, --app, --defer, --resume-after, --feed-ca, --deadline."""
    p.add_argument("--feed", required=True, metavar="DIR_OR_URL",
                   help="a feed folder or http(s)://127.0.0.1 URL (a channel's, or holding one "
                        "folder per channel)")
    p.add_argument("--channel", choices=CHANNELS, help="default: Retail")
    p.add_argument("--app", type=app_spec, action="append", default=[],
                   metavar="MANIFEST[:defer=MIN[,MIN...]][:resume-after=MIN]",
                   help="an app on the device, with its app_manifest.json (see above)")
    p.add_argument("--defer", type=whole_minutes, metavar="MINUTES",
                   help=f"an app with both capabilities ({DEFER_APP}) defers the install by "
                        "MINUTES at the first Pending (1440 in all at most; longer is truncated)")
    p.add_argument("--resume-after", type=minutes, metavar="MINUTES",
                   help=f"{DEFER_APP} resumes the deferred install after MINUTES")
    p.add_argument("--feed-ca", type=Path, metavar="PEM",
                   help="trust these roots for an https feed instead of the device's store")
    p.add_argument("--deadline", type=seconds, default=CHECK_DEADLINE_S, metavar="SECONDS",
                   help="the most a check may take to fetch the manifest and its images "
                        "(default: %(default)s; then exit 3)")


def apps_of(args: argparse.Namespace) -> list[AppSpec]:
    """The apps the arguments describe; UsageError if two share a name."""
    specs: list[AppSpec] = list(args.app)
    if args.defer is not None or args.resume_after is not None:
        defers = () if args.defer is None else (args.defer,)
        specs.append(AppSpec(AppManifest.deferring(DEFER_APP), defers, args.resume_after))
    names = [spec.manifest.name for spec in specs]
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"two apps are named {name!r}: an app's Name tells it apart")
    return specs


def feed_of(device: Device, args: argparse.Namespace) -> Feed:
    """The feed the options name, with the apps they describe registered on the device
    (which must be running: an https feed is checked with its store)."""
    for spec in apps_of(args):
        app = device.bus.add_app(spec.manifest)
        app.register_for_event_notifications(DeferringApp(spec.defers, spec.resume_after))
    context = None
    if str(args.feed).startswith("https:"):
        context = feed_context(args.feed_ca) if args.feed_ca else device.ssl_context()
    return open_feed(args.feed, args.channel, ssl_context=context)


def feed_context(cafile: Path) -> ssl.SSLContext:
    """A host-side context trusting the roots in `cafile` (checked at the host's clock).

    ImageFormatError if it holds no PEM certificate; an OSError naming it if it cannot be read.
    """
    pem = read_regular_text(cafile)  # a FIFO or a device is refused, not waited on
    try:
        return ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError):
        raise ImageFormatError(f"{cafile} holds no PEM certificates") from None
