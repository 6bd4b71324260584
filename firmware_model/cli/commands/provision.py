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
    ROOT_HASH_NAME,
    STORE_FILE,
    FactoryImages,
    parse_root_hash,
)
from policy.errors import UsageError
from policy.files import read_regular_text
from policy.text import counted


def register(commands: Subparsers) -> None:
    p = commands.add_parser(
        "provision", help="fuse the root-key hash, write keystore and store",
        description="Provision a fresh device: fuse a root-key hash, write a keystore and a "
                    "store to slot A. From a build folder (--images, the default), or from a "
                    "lab PKI of your own: --keys DIR --keystore KS --store STORE.")
    p.add_argument("--images", type=Path, help=f"build folder (default: {DEFAULT_IMAGES})")
    root = p.add_mutually_exclusive_group()
    root.add_argument("--root-hash", help="64 hex digits (default: IMAGES/keys/root.hash)")
    root.add_argument("--keys", type=Path, metavar="DIR",
                      help=f"a lab PKI (imagetool keygen): fuse DIR/{ROOT_HASH_NAME}; "
                           "--keystore and --store name the images (no build folder needed)")
    p.add_argument("--keystore", type=Path, help=f"default: IMAGES/{KEYSTORE_FILE}")
    p.add_argument("--store", type=Path, help=f"default: IMAGES/{STORE_FILE}")
    on_device(p, run)


def _root_hash(args: argparse.Namespace) -> bytes | None:
    if args.keys is not None:
        return parse_root_hash(read_regular_text(args.keys / ROOT_HASH_NAME))
    return parse_root_hash(args.root_hash) if args.root_hash else None


def factory(args: argparse.Namespace) -> FactoryImages:
    """The build folder's factory images, with --root-hash (or --keys), --keystore, --store
    instead (those files relative to the working directory). With --keys and no --images,
    --keystore and --store are needed: there is no build folder to take them from."""
    if args.keys is not None and args.images is None and not (args.keystore and args.store):
        raise UsageError("--keys needs --keystore and --store (the images to provision, "
                         "built with those keys), or --images for a build folder")
    return FactoryImages.from_build(
        DEFAULT_IMAGES if args.images is None else args.images,
        args.keystore.absolute() if args.keystore else KEYSTORE_FILE,
        args.store.absolute() if args.store else STORE_FILE,
        root_hash=_root_hash(args))


def run(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    device.provision(factory(args))
    loaded = device.running.loaded
    out.write(f"provisioned: keystore {loaded.keystore_image.name}, store "
              f"{loaded.store_image.name} ({counted(len(loaded.store.roots), 'root')}) in slot A\n")
    return 0
