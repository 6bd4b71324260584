"""How fast an image is authenticated, against the floor and against Microsoft's library.

    python -m bench.verify [--budget SECONDS]

For a 24 KiB store image, the whole-Mozilla store (certifi, ~150 roots) and a 1 MiB image:
- ours:  `keystore.authenticate(data, keyring)` (locate the metadata, check the section table,
         find the key for the image type, verify the signature);
- floor: hashlib.sha256 of the same covered bytes plus one ECDSA verify with cryptography
         (signature already DER-encoded, key already loaded);
- Microsoft: `Image(data)` + `has_valid_signature([Signer])` from azuresphere-imagemetadata,
         timed inside `.venv-ms` by tests/oracle/ms_helper.py (seconds per operation).
And a full load of the ~150-root store (authenticate, read the cramfs, load every
certificate) against the same floor.

Every figure is measured in this run; the ratios are what to read. Exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import uuid
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from bench.timing import met, per_op, verdict
from firmware_model.image.build import build_package
from firmware_model.image.certstore import build_store_payload, file_stem, read_store_payload
from firmware_model.image.cramfs import read_cramfs
from firmware_model.image.cramfs.layout import BLOCK_SIZE
from firmware_model.image.keystore import Keyring, TrustedKey
from firmware_model.image.package import locate
from firmware_model.image.sections import ImageType, SectionId
from firmware_model.trust.chain import authenticate
from tests.oracle.msvenv import OracleUnavailable, ask_microsoft, ensure_ms_venv
from tools.pki import LabPki, keygen

AUTHENTICATE_TARGET = 1.15  # x floor
FULL_LOAD_TARGET = 2.0  # x floor

warnings.filterwarnings("ignore", message="Parsed a serial number")  # zero serials in certifi


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    path: Path




def floor_op(data: bytes, key: ec.EllipticCurvePublicKey) -> Callable[[], None]:
    """SHA-256 of the covered bytes + one ECDSA verify; DER signature and key prepared."""
    end = locate(data).metadata_end
    raw = data[end:]
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                     int.from_bytes(raw[32:], "big"))
    algorithm = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    covered = memoryview(data)[:end]

    def op() -> None:
        key.verify(der, hashlib.sha256(covered).digest(), algorithm)

    return op


def roots() -> list[tuple[str, x509.Certificate]]:
    """The pinned certifi bundle, named as the recipes name bundle entries."""
    certs = x509.load_pem_x509_certificates(Path(certifi.where()).read_bytes())
    named: dict[str, x509.Certificate] = {}
    for cert in certs:
        stem = file_stem(cert)
        name, n = stem, 1
        while name in named:
            n += 1
            name = f"{stem}_{n}"
        named[name] = cert
    return list(named.items())


def make_cases(pki: LabPki, folder: Path) -> list[Case]:
    signer = pki.signer("image-signing")

    def image(name: str, payload: bytes, image_type: int) -> Case:
        data = build_package(payload, image_type=image_type, component_id=uuid.uuid4(),
                             image_id=uuid.uuid4(), signer=signer, name=name)
        path = folder / f"{name}.imagepackage"
        path.write_bytes(data)
        return Case(name, data, path)

    every = roots()
    count = 1
    while len(build_store_payload(every[:count])) < 24 * 1024 - 200:
        count += 1
    store = ImageType.UpdateCertStore
    return [
        image(f"store-{count}-roots", build_store_payload(every[:count]), store),
        image(f"store-{len(every)}-roots", build_store_payload(every), store),
        image("1MiB", os.urandom(1 << 20), ImageType.Applications),
    ]


def microsoft_per_op(case: Case, pki: LabPki, budget: float) -> float | None:
    try:
        python = ensure_ms_venv()
        answer = ask_microsoft(python, "time", str(case.path), "--cert",
                               str(pki.folder / "image-signing.pem"), "--key",
                               str(pki.folder / "image-signing.key"), "--budget", str(budget))
    except OracleUnavailable as error:
        print(f"    Microsoft's library: unavailable ({error})")
        return None
    return float(answer["seconds_per_op"])


def bench_case(case: Case, pki: LabPki, keyring: Keyring, key: ec.EllipticCurvePublicKey,
               budget: float) -> None:
    """Print one image's figures: floor, ours, Microsoft's."""
    view = memoryview(case.data)
    layout = locate(view)
    raw = case.data[layout.metadata_end :]
    thumb = layout.section_bytes(case.data, SectionId.Signature)[:20]
    timed = per_op({
        "floor": floor_op(case.data, key), "ours": lambda: authenticate(case.data, keyring),
        "locate": lambda: locate(view),
        "key lookup": lambda: keyring.trusted(thumb, ImageType.UpdateCertStore),
        "raw -> DER": lambda: utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                                         int.from_bytes(raw[32:], "big")),
    }, budget)
    floor, ours = timed["floor"], timed["ours"]
    print(f"  {case.name} ({len(case.data):,} bytes)")
    print(f"    floor (sha256 + ECDSA verify): {floor * 1e6:9.1f} us")
    print(f"    authenticate:                  {ours * 1e6:9.1f} us   "
          f"{verdict(ours / floor, AUTHENTICATE_TARGET)}")
    print(f"      overhead {(ours - floor) * 1e6:.1f} us; parts: " + ", ".join(
        f"{part} {timed[part] * 1e6:.1f} us" for part in ("locate", "key lookup", "raw -> DER")))
    theirs = microsoft_per_op(case, pki, budget)
    if theirs is not None:
        print(f"    Microsoft Image + has_valid_signature: {theirs * 1e6:9.1f} us   "
              f"ours/theirs {ours / theirs:5.2f}x  (target < 1: "
              f"{met(ours < theirs)})")


def full_load(data: bytes, keyring: Keyring) -> int:
    """Authenticate, read the cramfs, load every certificate: what a device does at boot."""
    layout = authenticate(data, keyring)
    return len(read_store_payload(data[: layout.metadata_start]))


def inflate_and_load_op(pems: list[bytes]) -> Callable[[], None]:
    """The least a full load must add to the floor: inflate the same PEM files from 4 KiB zlib
    blocks (as mkfs.cramfs stores them) and load each certificate with cryptography."""
    blocks = [zlib.compress(pem[i : i + BLOCK_SIZE]) for pem in pems
              for i in range(0, len(pem), BLOCK_SIZE)]

    def op() -> None:
        for block in blocks:
            zlib.decompress(block)
        for pem in pems:
            x509.load_pem_x509_certificate(pem)

    return op


def bench_full_load(case: Case, keyring: Keyring, key: ec.EllipticCurvePublicKey,
                    budget: float) -> None:
    payload = case.data[: locate(case.data).metadata_start]
    files = read_cramfs(payload)
    pems = list(files.values())
    floor = floor_op(case.data, key)
    inflate_and_load = inflate_and_load_op(pems)

    def both() -> None:
        floor()
        inflate_and_load()

    timed = per_op({
        "floor": floor, "floor+inflate+load": both,
        "full load": lambda: full_load(case.data, keyring),
        "authenticate": lambda: authenticate(case.data, keyring),
        "read_cramfs": lambda: read_cramfs(payload),
        "load certificates": lambda: [x509.load_pem_x509_certificate(p) for p in pems],
    }, budget * 3)
    print(f"full load of {case.name} (authenticate, read cramfs, load "
          f"{full_load(case.data, keyring)} certificates)")
    print(f"    {timed['full load'] * 1e6:9.1f} us   "
          f"{verdict(timed['full load'] / timed['floor'], FULL_LOAD_TARGET)}")
    print("    where the time goes:")
    for part in ("authenticate", "read_cramfs", "load certificates"):
        print(f"      {part:<18} {timed[part] * 1e6:9.1f} us")
    print(f"    for scale: floor + zlib-inflating the same {len(pems)} PEM files + loading them: "
          f"{timed['floor+inflate+load'] * 1e6:.1f} us; the full load is "
          f"{timed['full load'] / timed['floor+inflate+load']:.2f}x that")


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m bench.verify",
                                  description=(__doc__ or "").splitlines()[0])
    top.add_argument("--budget", type=float, default=1.0,
                     help="seconds spent timing each figure (default 1.0)")
    args = top.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        pki = keygen(Path(tmp) / "keys")
        certificate = pki.signer("image-signing").certificate
        keyring = Keyring([TrustedKey.from_certificate(certificate)])
        key = certificate.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        cases = make_cases(pki, Path(tmp))
        print("authenticate (locate metadata + verify) vs the floor and Microsoft's library")
        for case in cases:
            bench_case(case, pki, keyring, key, args.budget)
        bench_full_load(cases[1], keyring, key, args.budget)
    return 0


if __name__ == "__main__":
    sys.exit(main())
