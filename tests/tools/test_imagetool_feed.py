"""`imagetool feed`: images published into a feed folder, where `fwmodel update --feed` finds
them, and every refusal one line with nothing written (exit 1: an image the keystore would not
authenticate or a device does not install; exit 2: an unknown channel, two images of one
component, an output folder with other content, malformed input)."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from firmware_model.agent.feed import MANIFEST_NAME, image_file_name, open_feed
from firmware_model.agent.updater import UpdateOutcome, Updater
from firmware_model.device.model import Device
from firmware_model.errors import ReplayError
from firmware_model.image.keystore import TrustedKey, root_key_hash
from firmware_model.image.manifest import manifest_date, read_manifest
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from firmware_model.image.signing import Signer
from firmware_model.trust.chain import open_keystore, verify_image
from hal.soft.machine import SoftwareMachine
from tests.firmware_model.devicelab import SMALL, Lab, stranger
from tests.fixtures import device_lab
from tests.tools.imagetool_call import call
from tools.pki import IMAGE_SIGNING, ROOT, issue, load_public_key, new_key

__all__ = ["device_lab"]




def refused(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("imagetool: error: "), done.stderr
    assert text in lines[0], lines[0]


@pytest.fixture(scope="module")
def keys(device_lab: Lab) -> Path:
    return device_lab.folder / "keys"


@pytest.fixture(scope="module")
def store(device_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of the shipped kind, crafted with the lab's keys (security version 3)."""
    path = tmp_path_factory.mktemp("store") / "store.imagepackage"
    path.write_bytes(device_lab.store(device_lab.roots("certstore-2025-02"), 3))
    return path


def feed(store: Path, keys: Path, out: Path, *more: str | Path) -> subprocess.CompletedProcess[str]:
    return call("feed", store, "--keys", keys, "--channel", "Retail", "-o", out, *more)


def test_publishes_a_signed_manifest_and_the_image_where_the_device_looks(
        store: Path, keys: Path, tmp_path: Path) -> None:
    done = feed(store, keys, tmp_path / "feed", "--date", "2025-03-01T12:00:00Z")
    assert done.returncode == 0, done.stderr
    channel = tmp_path / "feed" / "Retail"
    image = parse_package(store.read_bytes())
    assert sorted(p.name for p in channel.iterdir()) == sorted(
        [MANIFEST_NAME, image_file_name(image.image_id)])
    assert (channel / image_file_name(image.image_id)).read_bytes() == store.read_bytes()
    fused = root_key_hash(load_public_key(keys / f"{ROOT}.pub.pem"))
    keyring = open_keystore((keys.parent / "keystore-2024.imagepackage").read_bytes(),
                            fused)[1].keyring
    manifest = verify_image((channel / MANIFEST_NAME).read_bytes(), keyring,
                            ImageType.BaseSystemUpdateManifest)
    assert manifest_date(manifest.payload) == int(
        dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC).timestamp())
    [entry] = read_manifest(manifest.payload)
    assert (entry.image_id, entry.component_id, entry.image_type, entry.size,
            entry.security_version, entry.sha256) == (
        image.image_id, image.component_id, ImageType.UpdateCertStore, len(image.data), 3,
        hashlib.sha256(store.read_bytes()).digest())
    assert "fwmodel update --feed" in done.stdout


def test_a_device_installs_what_was_published(device_lab: Lab, store: Path, keys: Path,
                                              tmp_path: Path) -> None:
    assert feed(store, keys, tmp_path / "feed").returncode == 0
    device = Device(SoftwareMachine(None, SMALL))
    device.provision(device_lab.factory)
    result = Updater(device).check_for_update(open_feed(str(tmp_path / "feed"), "Retail"))
    assert result.outcome is UpdateOutcome.INSTALLED
    assert device.running.loaded.store_image.image_id == parse_package(store.read_bytes()).image_id


def test_the_date_lets_a_user_rehearse_a_replay(device_lab: Lab, store: Path, keys: Path,
                                                tmp_path: Path) -> None:
    """Installed a manifest dated now; one dated before the shipped update is a replay."""
    device = Device(SoftwareMachine(None, SMALL))
    device.provision(device_lab.factory)
    assert feed(store, keys, tmp_path / "new").returncode == 0  # default date: now
    assert Updater(device).check_for_update(
        open_feed(str(tmp_path / "new"), "Retail")).outcome is UpdateOutcome.INSTALLED
    old = tmp_path / "old.imagepackage"
    old.write_bytes(device_lab.store(device_lab.roots("certstore-2025-02"), 4))
    assert feed(old, keys, tmp_path / "replayed", "--date", "2025-02-10").returncode == 0
    with pytest.raises(ReplayError, match="a replay"):
        Updater(device).fetch_update(open_feed(str(tmp_path / "replayed"), "Retail"))


def test_the_output_may_name_the_channel_folder(store: Path, keys: Path, tmp_path: Path) -> None:
    assert feed(store, keys, tmp_path / "feeds" / "Retail").returncode == 0
    assert (tmp_path / "feeds" / "Retail" / MANIFEST_NAME).is_file()
    assert not (tmp_path / "feeds" / "Retail" / "Retail").exists()
    refused(call("feed", store, "--keys", keys, "--channel", "RetailEval", "-o",
                 tmp_path / "feeds" / "Retail"), 2, "is the Retail channel, not RetailEval")


def test_both_channels_share_one_feed_folder(store: Path, keys: Path, tmp_path: Path) -> None:
    assert feed(store, keys, tmp_path / "feed").returncode == 0
    done = call("feed", store, "--keys", keys, "--channel", "RetailEval", "-o", tmp_path / "feed")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "feed").iterdir()) == ["Retail", "RetailEval"]


def test_an_unknown_channel_is_refused(store: Path, keys: Path, tmp_path: Path) -> None:
    refused(call("feed", store, "--keys", keys, "--channel", "Beta", "-o", tmp_path / "feed"),
            2, "unknown channel 'Beta': expected one of Retail, RetailEval")
    assert not (tmp_path / "feed").exists()


def test_an_image_the_keystore_would_not_authenticate_is_refused(
        device_lab: Lab, keys: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.imagepackage"
    foreign.write_bytes(device_lab.store(device_lab.roots(), 3, signer=stranger()))
    refused(feed(foreign, keys, tmp_path / "feed"), 1, f"{foreign}: signer ")
    assert not (tmp_path / "feed").exists()


def test_an_image_the_device_would_not_admit_is_refused(
        device_lab: Lab, keys: Path, tmp_path: Path) -> None:
    """The device's own admission (`agent.admission`), as `imagetool verify` runs it: a store
    past its counter, a keystore that trusts no manifest signer."""
    past = tmp_path / "past.imagepackage"
    past.write_bytes(device_lab.store(device_lab.roots(), 65))
    refused(feed(past, keys, tmp_path / "feed"), 1, f"{past}: store image lab-store has "
            "security version 65; the device's counter holds at most 64")
    stranded = tmp_path / "stranded.imagepackage"
    stranded.write_bytes(device_lab.keystore([TrustedKey.from_certificate(
        device_lab.signer().certificate, [ImageType.UpdateCertStore])]))
    refused(feed(stranded, keys, tmp_path / "feed"), 1, "could never take another update")
    assert not (tmp_path / "feed").exists()


def test_a_keystore_of_another_root_is_refused(device_lab: Lab, store: Path,
                                               tmp_path: Path) -> None:
    other = Lab.build(tmp_path / "other")  # its own keys: another root
    keystore = other.folder / "keystore-2024.imagepackage"
    refused(call("feed", keystore, "--keys", device_lab.folder / "keys", "--channel", "Retail",
                 "-o", tmp_path / "feed"), 1,
            "keystore root key does not match the fused root-key hash")
    refused(feed(store, other.folder / "keys", tmp_path / "feed"), 1, "is not in the keystore")
    assert not (tmp_path / "feed").exists()


def test_a_new_keystore_authenticates_the_store_it_boots_with(
        device_lab: Lab, keys: Path, tmp_path: Path) -> None:
    """A store signed by a key only the update's new keystore trusts is published; without
    that keystore it is refused."""
    root = device_lab.signer(ROOT)
    key = new_key()
    certificate = issue("Lab Image Signing 2", key, (root.certificate, root.key))
    second = Signer(key, certificate)
    new_keystore = tmp_path / "keystore.imagepackage"
    new_keystore.write_bytes(device_lab.keystore([
        TrustedKey.from_certificate(device_lab.signer().certificate,
                                    [ImageType.BaseSystemUpdateManifest]),
        TrustedKey.from_certificate(certificate, [ImageType.UpdateCertStore])]))
    new_store = tmp_path / "store.imagepackage"
    new_store.write_bytes(device_lab.store(device_lab.roots(), 3, signer=second))
    refused(feed(new_store, keys, tmp_path / "alone"), 1, "is not in the keystore")
    done = call("feed", new_keystore, new_store, "--keys", keys, "--channel", "Retail", "-o",
                tmp_path / "feed")
    assert done.returncode == 0, done.stderr
    entries = read_manifest(parse_package(
        (tmp_path / "feed" / "Retail" / MANIFEST_NAME).read_bytes()).payload)
    assert [e.image_type for e in entries] == [ImageType.TrustedKeystore, ImageType.UpdateCertStore]


def test_the_running_keystore_decides_who_may_sign(device_lab: Lab, store: Path, keys: Path,
                                                   tmp_path: Path) -> None:
    """--keystore: the device's keystore lets the image-signing key sign manifests only."""
    narrow = tmp_path / "narrow.imagepackage"
    narrow.write_bytes(device_lab.keystore([TrustedKey.from_certificate(
        device_lab.signer().certificate, [ImageType.BaseSystemUpdateManifest])]))
    refused(feed(store, keys, tmp_path / "feed", "--keystore", narrow), 1,
            "may not sign UpdateCertStore images")
    wide = keys.parent / "keystore-2024.imagepackage"
    assert feed(store, keys, tmp_path / "feed", "--keystore", wide).returncode == 0


def test_a_manifest_signer_the_device_does_not_trust_is_refused(
        device_lab: Lab, store: Path, keys: Path, tmp_path: Path) -> None:
    stores_only = tmp_path / "stores-only.imagepackage"
    stores_only.write_bytes(device_lab.keystore([TrustedKey.from_certificate(
        device_lab.signer().certificate, [ImageType.UpdateCertStore])]))
    refused(feed(store, keys, tmp_path / "feed", "--keystore", stores_only), 1,
            f"the manifest, signed with {keys / IMAGE_SIGNING}.key: signer ")
    assert not (tmp_path / "feed").exists()


def test_two_images_of_one_component_are_refused(device_lab: Lab, store: Path, keys: Path,
                                                 tmp_path: Path) -> None:
    second = tmp_path / "second.imagepackage"
    second.write_bytes(device_lab.store(device_lab.roots(), 4))
    refused(call("feed", store, second, "--keys", keys, "--channel", "Retail", "-o",
                 tmp_path / "feed"), 2, "are both store images")
    refused(call("feed", store, store, "--keys", keys, "--channel", "Retail", "-o",
                 tmp_path / "feed"), 2, "are both store images")
    assert not (tmp_path / "feed").exists()


def test_two_images_with_one_image_guid_are_refused(device_lab: Lab, keys: Path,
                                                   tmp_path: Path) -> None:
    """A feed serves each image under its GUID: two with one GUID would overwrite each other."""
    keystore, store = tmp_path / "keystore.imagepackage", tmp_path / "store.imagepackage"
    keystore.write_bytes(device_lab.keystore())
    store.write_bytes(device_lab.store(device_lab.roots(), 3,
                                       image_id=parse_package(keystore.read_bytes()).image_id))
    refused(call("feed", keystore, store, "--keys", keys, "--channel", "Retail", "-o",
                 tmp_path / "feed"), 2, "two images with one image GUID")
    assert not (tmp_path / "feed").exists()


def test_an_image_a_device_does_not_install_from_a_feed_is_refused(
        device_lab: Lab, keys: Path, tmp_path: Path) -> None:
    for name in ("app-example", "manifest-retail"):
        refused(feed(device_lab.folder / f"{name}.imagepackage", keys, tmp_path / "feed"), 1,
                "a device installs TrustedKeystore and UpdateCertStore images from a feed")
    assert not (tmp_path / "feed").exists()


def test_malformed_images_are_bad_input(keys: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.imagepackage"
    junk.write_bytes(b"\0" * 100)
    refused(feed(junk, keys, tmp_path / "feed"), 2, f"{junk}: ")
    refused(feed(tmp_path / "missing.imagepackage", keys, tmp_path / "feed"), 2,
            "cannot read or write")
    refused(feed(junk, tmp_path / "no-keys", tmp_path / "feed"), 2, "cannot read or write")
    assert not (tmp_path / "feed").exists()


def test_a_folder_holding_a_feed_is_replaced_only_with_force(
        device_lab: Lab, store: Path, keys: Path, tmp_path: Path) -> None:
    out = tmp_path / "feed"
    assert feed(store, keys, out).returncode == 0
    before = {p.name: p.read_bytes() for p in (out / "Retail").iterdir()}
    newer = tmp_path / "newer.imagepackage"
    newer.write_bytes(device_lab.store(device_lab.roots(), 5))
    refused(feed(newer, keys, out), 2, "exists and is not empty: it holds a feed already")
    assert {p.name: p.read_bytes() for p in (out / "Retail").iterdir()} == before
    assert feed(newer, keys, out, "--force").returncode == 0
    assert sorted(p.name for p in (out / "Retail").iterdir()) == sorted(
        [MANIFEST_NAME, image_file_name(parse_package(newer.read_bytes()).image_id)])
    assert [p.name for p in out.iterdir()] == ["Retail"]  # no temporary folder left


def test_a_folder_with_other_content_is_refused(store: Path, keys: Path, tmp_path: Path) -> None:
    out = tmp_path / "home"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    refused(feed(store, keys, out), 2, "holds notes.txt, which is not a channel folder")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert feed(store, keys, out, "--force").returncode == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "Retail" / MANIFEST_NAME).exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    refused(feed(store, keys, a_file, "--force"), 2, "exists and is not a folder")


def test_bad_dates_are_usage_errors(store: Path, keys: Path, tmp_path: Path) -> None:
    for date, text in (("yesterday", "is not an ISO 8601 date"),
                       ("1969-12-31", "a manifest is dated 1970 or later")):
        done = call("feed", store, "--keys", keys, "--channel", "Retail", "-o",
                    tmp_path / "feed", "--date", date)
        assert done.returncode == 2 and text in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "feed").exists()


def test_a_new_manifest_has_a_new_image_id(store: Path, keys: Path, tmp_path: Path) -> None:
    ids = set()
    for day in ("2025-03-01", "2025-03-02"):
        out = tmp_path / day
        assert feed(store, keys, out, "--date", day).returncode == 0
        ids.add(parse_package((out / "Retail" / MANIFEST_NAME).read_bytes()).image_id)
    assert len(ids) == 2 and all(isinstance(i, uuid.UUID) for i in ids)


def test_help_names_the_refusals() -> None:
    done = subprocess.run([sys.executable, "tools/imagetool.py", "feed", "--help"],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--channel Retail|RetailEval" in text and "--date" in text and "--force" in text
