"""tools/build_images.py: the July 2024 images and feeds beside February 2025's, and a lab PKI
made before the July 2024 key existed, which gains that key and keeps everything else."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_model.errors import ImageFormatError
from firmware_model.image.keystore import has_keystore_signing_role
from firmware_model.image.manifest import read_manifest
from firmware_model.image.package import parse_package
from firmware_model.trust.chain import open_keystore
from tools import imagetool
from tools.build_images import CHANNELS, RECIPES, build_all
from tools.pki import (
    IMAGE_SIGNING,
    IMAGE_SIGNING_2024_07,
    KEYGEN_FILES,
    KEYSTORE_SIGNING,
    ROOT,
    issue,
    keygen,
    load_certificate,
    load_signer,
    write_certificate,
)
from tools.recipes import build_from_recipe


def test_keygen_makes_both_image_signing_keys(tmp_path: Path) -> None:
    keygen(tmp_path / "keys")
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == sorted(KEYGEN_FILES)
    assert {f"{IMAGE_SIGNING}.key", f"{IMAGE_SIGNING_2024_07}.key"} <= set(KEYGEN_FILES)


def test_a_lab_pki_made_before_july_2024_gains_the_new_key_under_its_own_root(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "build" / "keys"
    keygen(keys)
    for suffix in (".key", ".pem"):
        (keys / f"{IMAGE_SIGNING_2024_07}{suffix}").unlink()
    kept = {name: (keys / name).read_bytes() for name in KEYGEN_FILES if (keys / name).exists()}
    build_all(tmp_path / "build")
    assert {name: (keys / name).read_bytes() for name in kept} == kept
    new = load_certificate(keys / f"{IMAGE_SIGNING_2024_07}.pem")
    root = load_certificate(keys / f"{ROOT}.pem")
    assert new.issuer == root.subject
    public = root.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(new.signature, new.tbs_certificate_bytes, ec.ECDSA(new.signature_hash_algorithm))
    assert (keys / f"{IMAGE_SIGNING_2024_07}.key").stat().st_mode & 0o777 == 0o600
    for channel in CHANNELS:
        feed = tmp_path / "build" / "feeds-2024-07" / channel
        manifest = parse_package((feed / "manifest.imagepackage").read_bytes())
        listed = [entry.image_id for entry in read_manifest(manifest.payload)]
        assert manifest.name == "bsu-2024-07" and len(listed) == 1
        assert parse_package((feed / f"{listed[0]}.imagepackage").read_bytes()).name == (
            "keystore-2024-07")


def test_a_lab_pki_made_before_the_keystore_signing_role_gets_it_under_its_own_root(
    tmp_path: Path,
) -> None:
    """A keys folder whose keystore-signing certificate lacks the role (an older keygen): every
    device would refuse the keystores it signs, so `imagetool build` refuses them, and
    `imagetool keygen --update` (as `make images` does) re-issues the certificate with the
    role, same key, same root; the keystore then opens against that root."""
    keys = tmp_path / "keys"
    keygen(keys)
    root = load_signer(keys / f"{ROOT}.key", keys / f"{ROOT}.pem")
    signer = load_signer(keys / f"{KEYSTORE_SIGNING}.key", keys / f"{KEYSTORE_SIGNING}.pem")
    write_certificate(keys / f"{KEYSTORE_SIGNING}.pem",  # as keygen made it before the role
                      issue("Lab Keystore Signing", signer.key, (root.certificate, root.key)))
    recipe, out = RECIPES / "keystore-2024.toml", tmp_path / "ks.imagepackage"
    with pytest.raises(ImageFormatError, match="lacks the keystore-signing role"):
        build_from_recipe(recipe, keys, out)
    assert imagetool.main(["keygen", "--out", str(keys), "--update"]) == 0
    updated = load_certificate(keys / f"{KEYSTORE_SIGNING}.pem")
    assert has_keystore_signing_role(updated)
    assert updated.public_key() == signer.certificate.public_key()
    assert load_certificate(keys / f"{ROOT}.pem") == root.certificate
    fused = bytes.fromhex((keys / f"{ROOT}.hash").read_text())
    open_keystore(build_from_recipe(recipe, keys, out), fused)
    assert imagetool.main(["keygen", "--out", str(keys), "--update"]) == 0  # nothing to do
    assert load_certificate(keys / f"{KEYSTORE_SIGNING}.pem") == updated
