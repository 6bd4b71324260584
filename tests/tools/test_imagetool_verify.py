"""`imagetool verify` means what its help says: exit 0 only for an image a device would take,
signer and content alike (docs/image-format.md, `imagetool verify`).

- a TrustedKeystore checked with `--cert` is valid only if that certificate carries the
  keystore-signing role and is the signer certificate the keystore carries;
- a TrustedKeystore is checked against the root alone (`--root-pubkey`, `open_keystore`);
- the content passes the device's own admission (`agent.admission`), with the device's exit
  code: the same image, offered to a device in an update, is refused for the same reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from firmware_model.agent.updater import Updater
from firmware_model.errors import FwModelError
from firmware_model.image.build import build_package
from firmware_model.image.certstore import build_store_payload
from firmware_model.image.cramfs import build_cramfs
from firmware_model.image.keystore import KEYSTORE_SIGNING_ROLE, TrustedKey
from firmware_model.image.manifest import ManifestEntry, build_manifest
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from firmware_model.image.signing import Signer
from policy.cli import exit_code
from tests.firmware_model.devicelab import (
    LAB_MANIFEST_DATE,
    MANIFEST_COMPONENT,
    STORE_COMPONENT,
    Lab,
    feed_of,
    small_device,
)
from tests.tools.test_imagetool import assert_fails, call
from tools.pki import IMAGE_SIGNING, KEYSTORE_SIGNING, issue, new_key

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number:UserWarning")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab.build(tmp_path_factory.mktemp("verify-lab"))


@pytest.fixture(scope="module")
def keys(lab: Lab) -> Path:
    return lab.folder / "keys"


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / f"{name}.imagepackage"
    path.write_bytes(data)
    return path


def _keystore_signed_by_the_image_signing_key(lab: Lab) -> bytes:
    return lab.keystore(carried=lab.signer(), signer=lab.signer())


# --- keystores with --cert ------------------------------------------------------------------


def test_verify_cert_accepts_a_keystore_only_with_the_keystore_signing_role(
        lab: Lab, keys: Path, tmp_path: Path) -> None:
    good = lab.folder / "keystore-2024.imagepackage"
    done = call("verify", good, "--cert", keys / f"{KEYSTORE_SIGNING}.pem")
    assert done.returncode == 0 and "valid TrustedKeystore image" in done.stdout
    bad = _write(tmp_path, "ks-by-image-signing", _keystore_signed_by_the_image_signing_key(lab))
    for image in (bad, good):
        line = assert_fails(call("verify", image, "--cert", keys / f"{IMAGE_SIGNING}.pem"), 1)
        assert "lacks the keystore-signing role (extended key usage " \
               f"{KEYSTORE_SIGNING_ROLE.dotted_string})" in line


def test_verify_cert_refuses_a_keystore_that_carries_another_signer(
        lab: Lab, keys: Path, tmp_path: Path) -> None:
    """A second keystore-signing certificate of the same root signed the keystore: the
    certificate given is not its signer."""
    root = lab.signer("root")
    key = new_key()
    other = Signer(key, issue("Other Keystore Signer", key, (root.certificate, root.key),
                              extended_usages=[KEYSTORE_SIGNING_ROLE]))
    image = _write(tmp_path, "ks-by-other", lab.keystore(carried=other, signer=other))
    line = assert_fails(call("verify", image, "--cert", keys / f"{KEYSTORE_SIGNING}.pem"), 1)
    assert "keystore carries the signer certificate" in line
    other_pem = tmp_path / "other.pem"
    other_pem.write_bytes(other.certificate.public_bytes(serialization.Encoding.PEM))
    assert call("verify", image, "--cert", other_pem).returncode == 0


# --- keystores against the root -------------------------------------------------------------


def test_verify_checks_a_keystore_against_the_root_alone(lab: Lab, keys: Path,
                                                         tmp_path: Path) -> None:
    root = keys / "root.pub.pem"
    for name in ("keystore-2024", "keystore-2025-02"):
        done = call("verify", lab.folder / f"{name}.imagepackage", "--root-pubkey", root)
        assert done.returncode == 0 and "valid TrustedKeystore image" in done.stdout
    bad = _write(tmp_path, "ks-by-image-signing", _keystore_signed_by_the_image_signing_key(lab))
    line = assert_fails(call("verify", bad, "--root-pubkey", root), 1)
    assert "lacks the keystore-signing role" in line
    assert call("keygen", "--out", tmp_path / "other").returncode == 0
    line = assert_fails(call("verify", lab.folder / "keystore-2024.imagepackage",
                             "--root-pubkey", tmp_path / "other" / "root.pub.pem"), 1)
    assert "does not match the fused root-key hash" in line


def test_verify_checks_a_keystore_given_with_a_keystore_against_the_root(lab: Lab,
                                                                         keys: Path) -> None:
    """As a device does: a new keystore is authenticated against the fuses, not against the
    keys of the keystore it runs (which may not sign keystores)."""
    keystore = lab.folder / "keystore-2024.imagepackage"
    for name in ("keystore-2024", "keystore-2025-02"):
        done = call("verify", lab.folder / f"{name}.imagepackage", "--keystore", keystore,
                    "--root-pubkey", keys / "root.pub.pem")
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("args", "reason"), [
    (["--root-pubkey", "root.pub.pem"], "give --keystore KS with --root-pubkey, or --cert"),
    (["--cert", "image-signing.pem", "--root-pubkey", "root.pub.pem"], "not both"),
    (["--keystore", "KS"], "--keystore needs --root-pubkey"),
    ([], "verify needs a trust anchor"),
], ids=["root-alone-for-a-store", "cert-and-root", "keystore-without-root", "no-anchor"])
def test_verify_anchors_that_say_nothing_are_bad_usage(lab: Lab, keys: Path, args: list[str],
                                                       reason: str) -> None:
    argv = [str(keys / a) if a.endswith(".pem") else a for a in args]
    argv = [str(lab.folder / "keystore-2024.imagepackage") if a == "KS" else a for a in argv]
    line = assert_fails(call("verify", lab.folder / "certstore-2024.imagepackage", *argv), 2)
    assert reason in line


# --- the device's admission -----------------------------------------------------------------


def _store(lab: Lab, payload: bytes, security_version: int = 2) -> bytes:
    return build_package(payload, image_type=ImageType.UpdateCertStore,
                         component_id=STORE_COMPONENT, image_id=uuid.uuid4(),
                         signer=lab.signer(), name="verify-store",
                         security_version=security_version)


def _roots_payload(lab: Lab) -> bytes:
    return build_store_payload(lab.roots("certstore-2025-02"))


def store_past_the_counter(lab: Lab) -> bytes:
    return _store(lab, _roots_payload(lab), 65)


def keystore_past_the_counter(lab: Lab) -> bytes:
    return lab.keystore(security_version=65)


def keystore_that_trusts_no_manifest_signer(lab: Lab) -> bytes:
    return lab.keystore([TrustedKey.from_certificate(lab.signer().certificate,
                                                     [ImageType.UpdateCertStore])])


def store_with_bytes_after_the_filesystem(lab: Lab) -> bytes:
    return _store(lab, _roots_payload(lab) + bytes(4))


def store_file_holding_two_roots(lab: Lab) -> bytes:
    pems = b"".join(c.public_bytes(serialization.Encoding.PEM)
                    for _, c in lab.roots("certstore-2025-02"))
    return _store(lab, build_cramfs({"certs/Bundle.pem": pems}))


def store_that_is_not_a_filesystem(lab: Lab) -> bytes:
    return _store(lab, b"not a cramfs" * 10)


def _manifest(lab: Lab, payload: bytes) -> bytes:
    return build_package(payload, image_type=ImageType.BaseSystemUpdateManifest,
                         component_id=MANIFEST_COMPONENT, image_id=uuid.uuid4(),
                         signer=lab.signer(), name="verify-manifest")


def _entry(lab: Lab) -> ManifestEntry:
    return ManifestEntry.for_image(parse_package(_store(lab, _roots_payload(lab))))


def manifest_with_trailing_bytes(lab: Lab) -> bytes:
    return _manifest(lab, build_manifest([_entry(lab)], LAB_MANIFEST_DATE) + bytes(8))


def manifest_listing_two_stores(lab: Lab) -> bytes:
    return _manifest(lab, build_manifest([_entry(lab), _entry(lab)], LAB_MANIFEST_DATE))


Case = Callable[[Lab], bytes]
ADMISSION: list[tuple[Case, int, str]] = [
    (store_past_the_counter, 1, "the device's counter holds at most 64"),
    (keystore_past_the_counter, 1, "the device's counter holds at most 64"),
    (keystore_that_trusts_no_manifest_signer, 1, "could never take another update"),
    (store_with_bytes_after_the_filesystem, 2, "4 bytes after the filesystem"),
    (store_file_holding_two_roots, 2, "certs/Bundle.pem holds 2 certificates, not one"),
    (store_that_is_not_a_filesystem, 2, "no cramfs magic"),
    (manifest_with_trailing_bytes, 2, "manifest has 8 unexpected trailing bytes"),
    (manifest_listing_two_stores, 1, "the manifest lists two store images"),
]


def _device_refusal(lab: Lab, image: bytes) -> FwModelError:
    """What a device says when offered `image` in an update (the manifest itself, for a
    manifest)."""
    device = small_device(lab)
    if parse_package(image).image_type == ImageType.BaseSystemUpdateManifest:
        feed = feed_of(image, [])
    else:
        feed = feed_of(lab.manifest([image]), [image])
    with pytest.raises(FwModelError) as refused:
        Updater(device).check_for_update(feed)
    return refused.value


@pytest.mark.parametrize(("case", "code", "reason"), ADMISSION,
                         ids=[case.__name__ for case, *_ in ADMISSION])
def test_verify_refuses_what_the_device_refuses_with_its_exit_code(
        lab: Lab, keys: Path, tmp_path: Path, case: Case, code: int, reason: str) -> None:
    image = case(lab)
    path = _write(tmp_path, case.__name__, image)
    is_keystore = parse_package(image).image_type == ImageType.TrustedKeystore
    anchors = [["--root-pubkey", keys / "root.pub.pem"]] if is_keystore else [
        ["--keystore", lab.folder / "keystore-2024.imagepackage", "--root-pubkey",
         keys / "root.pub.pem"]]
    anchors.append(["--cert", keys / (f"{KEYSTORE_SIGNING}.pem" if is_keystore
                                      else f"{IMAGE_SIGNING}.pem")])
    for anchor in anchors:
        line = assert_fails(call("verify", path, *anchor), code)
        assert reason in line, (anchor, line)
    refused = _device_refusal(lab, image)
    assert exit_code(refused) == code and reason in str(refused)


def test_verify_still_calls_the_shipped_images_valid(lab: Lab, keys: Path) -> None:
    for name in ("certstore-2024", "certstore-2025-02", "manifest-retail"):
        done = call("verify", lab.folder / f"{name}.imagepackage", "--keystore",
                    lab.folder / "keystore-2024.imagepackage", "--root-pubkey",
                    keys / "root.pub.pem")
        assert done.returncode == 0, done.stderr
