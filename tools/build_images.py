"""Build every image the project ships from images/recipes into a build folder.

    python tools/build_images.py --out images/build

Lays out:
    keys/                       a lab PKI (made once; reused while it exists, and brought up to
                                date under its own root: see tools.pki.complete_lab_pki)
    <recipe>.imagepackage       one image per recipe (app-example.imagepackage: an
                                Applications image, see images/recipes/app-example.toml)
    feeds/<Channel>/            what an update feed serves: manifest.imagepackage and each
                                listed image as <image GUID>.imagepackage (February 2025; a
                                feed of your own images: `imagetool feed`)
    feeds-2024-07/<Channel>/    the July 2024 keystore update, on both channels
    feeds-2024-07-newkey/<Channel>/  an update signed by the July 2024 image-signing key
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from firmware_model.agent.feed import MANIFEST_NAME, image_file_name
from firmware_model.image.manifest import read_manifest
from firmware_model.image.package import parse_package
from policy.cli import run_guarded
from policy.files import read_regular
from tools.pki import complete_lab_pki, keygen
from tools.recipes import build_from_recipe

RECIPES = Path(__file__).resolve().parent.parent / "images" / "recipes"
# Order matters: manifests list images that must exist first.
IMAGES = ["certstore-2024", "certstore-2025-02", "keystore-2024", "keystore-2025-02",
          "keystore-2024-07", "certstore-2024-newkey", "app-example"]
FEEDS = {"Retail": "manifest-retail", "RetailEval": "manifest-retaileval"}
#: Feed folders beside feeds/, each serving one manifest on both channels.
CHANNELS = ("Retail", "RetailEval")
OTHER_FEEDS = {"feeds-2024-07": "manifest-2024-07",
               "feeds-2024-07-newkey": "manifest-2024-07-newkey"}


def publish_feed(manifest: Path, images: Path, feed: Path) -> None:
    """Lay out `feed` with `manifest` and every image it lists, named by image GUID."""
    feed.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(manifest, feed / MANIFEST_NAME)
    by_id = {parse_package(read_regular(p)).image_id: p for p in images.glob("*.imagepackage")}
    for entry in read_manifest(parse_package(read_regular(manifest)).payload):
        shutil.copyfile(by_id[entry.image_id], feed / image_file_name(entry.image_id))


def build_all(out: Path, recipes: Path = RECIPES) -> None:
    keys = out / "keys"
    if not (keys / "root.key").exists():
        keygen(keys)
    complete_lab_pki(keys)
    for name in IMAGES + list(FEEDS.values()) + list(OTHER_FEEDS.values()):
        build_from_recipe(recipes / f"{name}.toml", keys, out / f"{name}.imagepackage")
    published = [("feeds", channel, manifest) for channel, manifest in FEEDS.items()]
    published += [(folder, channel, manifest) for folder, manifest in OTHER_FEEDS.items()
                  for channel in CHANNELS]
    for folder, channel, manifest in published:
        feed = out / folder / channel
        shutil.rmtree(feed, ignore_errors=True)
        publish_feed(out / f"{manifest}.imagepackage", out, feed)


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="build_images", description=__doc__.splitlines()[0])
    top.add_argument("--out", default="images/build")
    args = top.parse_args(argv)

    def body() -> int:
        build_all(Path(args.out))
        print(f"images built in {args.out}")
        return 0

    return run_guarded("build_images", body)


if __name__ == "__main__":
    sys.exit(main())
