"""Craft, sign, inspect and verify Azure Sphere image packages.

    python tools/imagetool.py keygen --out DIR
    python tools/imagetool.py build RECIPE.toml --keys DIR -o OUT
    python tools/imagetool.py sign IMAGE --key KEY --cert CERT -o OUT
    python tools/imagetool.py show IMAGE [--json]
    python tools/imagetool.py verify IMAGE (--cert CERT | --root-pubkey ROOT [--keystore KS])
    python tools/imagetool.py feed IMAGE... --keys DIR --channel NAME -o FEED [--keystore KS]
        [--date DATE] [--force]

Also installed as the console script `imagetool`. Exit codes: see `--help` (policy.cli).
Errors are one line on stderr; nothing is written when the input is bad.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from firmware_model.agent.feed import CHANNELS
from firmware_model.image.build import resign
from firmware_model.image.package import parse_package
from policy.cli import ExitCode, OneLineParser, epilog, iso_datetime, run_guarded
from policy.errors import UsageError
from policy.files import read_regular, read_regular_text
from tools.describe import describe, render_text
from tools.feed import __doc__ as feed_doc
from tools.feed import publish
from tools.files import write_atomic
from tools.pki import complete_lab_pki, keygen, load_signer
from tools.recipes import build_from_recipe
from tools.verify import DESCRIPTION as verify_doc
from tools.verify import verify_file

PROG = "imagetool"
EPILOG = epilog({
    ExitCode.OK: "verify: the image is valid and its signer may sign its type: a device "
                 "would authenticate it and admit its content",
    ExitCode.REFUSED: "verify: a device would refuse the image for its signature, its "
                      "signer or its content, such as a security version past 64, a keystore "
                      "that trusts no manifest signer, a manifest listing other images; feed: "
                      "an image the keystore would not authenticate, or of a type a device does "
                      "not install from a feed",
    ExitCode.BAD_INPUT: "verify: a malformed image or payload, as a device finds it, such as "
                        "a store file holding two certificates, bytes after the filesystem, a "
                        "manifest with trailing bytes; also keygen refusing to replace an "
                        "existing lab PKI; feed: an unknown channel, two images of one "
                        "component, an output folder with other content",
}, codes=[ExitCode.OK, ExitCode.REFUSED, ExitCode.BAD_INPUT, ExitCode.INTERRUPTED])


def _keygen(args: argparse.Namespace) -> int:
    if args.update:
        if args.force:
            raise UsageError("--update keeps the lab PKI's root; --force replaces it: not both")
        made = complete_lab_pki(Path(args.out))
        print(f"{args.out}: " + (f"issued {', '.join(made)} under its root" if made
                                 else "up to date"))
        return 0
    pki = keygen(Path(args.out), force=args.force)
    print(f"lab PKI written to {pki.folder} (root key hash: "
          f"{read_regular_text(pki.folder / 'root.hash').strip()})")
    return 0


def _build(args: argparse.Namespace) -> int:
    image = build_from_recipe(Path(args.recipe), Path(args.keys), Path(args.output))
    print(f"{args.output}: {len(image)} bytes")
    return 0


def _sign(args: argparse.Namespace) -> int:
    signer = load_signer(Path(args.key), Path(args.cert))
    signed = resign(read_regular(Path(args.image)), signer)
    write_atomic(Path(args.output), signed)
    print(f"{args.output}: signed by {signer.thumbprint.hex()}")
    return 0


def _show(args: argparse.Namespace) -> int:
    info = describe(parse_package(read_regular(Path(args.image))))
    print(json.dumps(info, indent=2) if args.json else render_text(info))
    return 0


def _verify(args: argparse.Namespace) -> int:
    image = verify_file(Path(args.image), *(Path(p) if p else None for p in (
        args.cert, args.keystore, args.root_pubkey)))
    print(f"{args.image}: valid {image.image_type_name} image signed by {image.thumbprint.hex()}")
    return 0


def _feed(args: argparse.Namespace) -> int:
    date = int(args.date.timestamp()) if args.date is not None else int(time.time())
    if date < 0:
        raise UsageError(f"--date {args.date:%Y-%m-%d}: a manifest is dated 1970 or later")
    done = publish([Path(p) for p in args.images], Path(args.keys), args.channel,
                   Path(args.output), date=date,
                   keystore=Path(args.keystore) if args.keystore else None, force=args.force)
    when = dt.datetime.fromtimestamp(date, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{done.folder}: manifest {done.manifest_id} dated {when}, signed by "
          f"{args.keys}/image-signing")
    for path, image in done.images:
        print(f"  {path.name}: {image.image_type_name} {image.name} (security version "
              f"{image.security_version})")
    print(f"install with: fwmodel update --feed {args.output} --channel {args.channel}")
    return 0


def _add_feed(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    p = sub.add_parser("feed", help="publish images into an update feed folder (signed manifest "
                                    "and the images, where `fwmodel update --feed` looks)",
                       description=feed_doc, epilog=EPILOG)
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="TrustedKeystore and UpdateCertStore images, one per component")
    p.add_argument("--keys", required=True, metavar="DIR",
                   help="the lab PKI (imagetool keygen) whose image-signing key signs the "
                        "manifest and whose root the device fused")
    p.add_argument("--channel", required=True, metavar="|".join(CHANNELS))
    p.add_argument("-o", "--output", required=True, metavar="FEED",
                   help="the feed folder (one folder per channel), or the channel's folder")
    p.add_argument("--keystore", metavar="KS",
                   help="the keystore image the device runs (default: what the shipped keystore "
                        "recipes build from --keys: its image-signing key may sign stores and "
                        "update manifests)")
    p.add_argument("--date", type=iso_datetime, help="the manifest's build date, its version "
                   "(default: now; an older one than the device installed is a replay)")
    p.add_argument("--force", action="store_true",
                   help="replace the channel folder even if it holds a feed already")
    p.set_defaults(func=_feed)


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(prog=PROG, description=(__doc__ or "").splitlines()[0], epilog=EPILOG)
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("keygen", help="create a lab PKI")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true",
                   help="replace an existing lab PKI in that folder (its root is lost)")
    p.add_argument("--update", action="store_true",
                   help="bring a lab PKI made by an older keygen up to date under its own root "
                        "(the keystore-signing role, the July 2024 image-signing key)")
    p.set_defaults(func=_keygen)
    p = sub.add_parser("build", help="build a signed image from a TOML recipe")
    p.add_argument("recipe")
    p.add_argument("--keys", required=True)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=_build)
    p = sub.add_parser("sign", help="re-sign an image (new SG section and signature)")
    p.add_argument("image")
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=_sign)
    p = sub.add_parser("show", help="decode every section and the payload")
    p.add_argument("image")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_show)
    p = sub.add_parser("verify", help="check an image as a device would: its signature, who may "
                                      "sign its type, and its content",
                       description=verify_doc, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--cert", help="trust only this signing certificate (PEM); a keystore image "
                                  "must carry it and it must carry the keystore-signing role")
    p.add_argument("--root-pubkey", help="the root public key (PEM key or certificate) whose "
                                         "hash a device fuses: a keystore image is checked "
                                         "against it alone")
    p.add_argument("--keystore", metavar="KS", help="the keystore image a device runs "
                                                    "(authenticated with --root-pubkey): its "
                                                    "keys check any other image")
    p.set_defaults(func=_verify)
    _add_feed(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_guarded(PROG, lambda: int(args.func(args)))


if __name__ == "__main__":
    sys.exit(main())
