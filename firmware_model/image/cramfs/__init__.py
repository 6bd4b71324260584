"""cramfs, the filesystem of certificate-store and application payloads: the on-disk layout
(declared once), a writer byte-identical to util-linux `mkfs.cramfs`, and a strict reader."""

from firmware_model.image.cramfs.build import build_cramfs
from firmware_model.image.cramfs.read import read_cramfs

__all__ = ["build_cramfs", "read_cramfs"]
