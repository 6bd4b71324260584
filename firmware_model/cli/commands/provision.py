"""`fwmodel provision`: fuse the root-key hash, write the factory keystore and store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from firmware_model.cli.commands import Subparsers, on_device
from firmware_model.cli.options import DEFAULT_IMAGES
from firmware_model.device.model import Device
from firmware_model.device.provision import (
    KEYSTORE_FILE,
    STORE_FILE,
    FactoryImages,
    parse_root_hash,
)


def register(commands: Subparsers) -> None:
    p = commands.add_parser("provision", help="fuse the root-key hash, write keystore and store")
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES,
                   help="build folder (default: %(default)s)")
    p.add_argument("--root-hash", help="64 hex digits (default: IMAGES/keys/root.hash)")
    p.add_argument("--keystore", type=Path, help=f"default: IMAGES/{KEYSTORE_FILE}")
    p.add_argument("--store", type=Path, help=f"default: IMAGES/{STORE_FILE}")
    on_device(p, run)


def factory(args: argparse.Namespace) -> FactoryImages:
    """The build folder's factory images, with --root-hash, --keystore, --store instead
    (those files relative to the working directory)."""
    return FactoryImages.from_build(
        args.images,
        args.keystore.absolute() if args.keystore else KEYSTORE_FILE,
        args.store.absolute() if args.store else STORE_FILE,
        root_hash=parse_root_hash(args.root_hash) if args.root_hash else None)


def run(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    device.provision(factory(args))
    loaded = device.running.loaded
    out.write(f"provisioned: keystore {loaded.keystore_image.name}, store "
              f"{loaded.store_image.name} ({len(loaded.store.roots)} roots) in slot A\n")
    return 0
