"""July 2024: the image-signing key change as a trusted-keystore update (Microsoft, 10 July
2024: all devices install it and reboot; the OS version does not change). The shipped recipes:
keystore-2024-07 adds the new key and keeps the old, feeds-2024-07 serves it signed by the old
key, feeds-2024-07-newkey serves an update signed by the new key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from firmware_model.agent.feed import MemoryFeed
from firmware_model.agent.schedule import run_schedule
from firmware_model.agent.updater import UpdateOutcome, Updater
from firmware_model.device.model import Device
from firmware_model.device.status import OS_VERSION, device_status
from firmware_model.errors import UntrustedSignerError
from firmware_model.image.keystore import read_keystore_payload
from firmware_model.image.package import parse_package
from firmware_model.image.signing import thumbprint
from firmware_model.trust.components import Component
from hal.soft.machine import SoftwareMachine
from tests.firmware_model.devicelab import SMALL, Lab, feed_of
from tools.build_images import CHANNELS
from tools.pki import IMAGE_SIGNING, IMAGE_SIGNING_2024_07


def july(lab: Lab, folder: str = "feeds-2024-07", channel: str = "Retail") -> MemoryFeed:
    return MemoryFeed.from_directory(lab.folder / folder / channel)


def device_on_july_10(lab: Lab) -> Device:
    """A device as it was before the update: the 2024 keystore and store, 10 July 2024."""
    device = Device(SoftwareMachine(None, SMALL, wall_start=datetime(2024, 7, 10, tzinfo=UTC)))
    device.provision(lab.factory)
    return device


def thumbprints(lab: Lab, keystore: str) -> set[bytes]:
    payload = parse_package(lab.image(keystore)).payload
    return {key.thumbprint for key in read_keystore_payload(payload).keys}


def test_the_july_2024_keystore_adds_the_new_key_and_keeps_the_old(device_lab: Lab) -> None:
    old, new = (thumbprint(device_lab.signer(stem).certificate)
                for stem in (IMAGE_SIGNING, IMAGE_SIGNING_2024_07))
    assert thumbprints(device_lab, "keystore-2024") == {old}
    assert thumbprints(device_lab, "keystore-2024-07") == {old, new}
    assert thumbprints(device_lab, "keystore-2025-02") == {old, new}  # February loses none


def test_both_channels_serve_the_keystore_update(device_lab: Lab) -> None:
    for channel in CHANNELS:
        files = july(device_lab, channel=channel).files
        assert files == july(device_lab).files and len(files) == 2


def test_before_the_keystore_update_an_image_signed_by_the_new_key_is_refused(
    device_lab: Lab,
) -> None:
    device = device_on_july_10(device_lab)
    with pytest.raises(UntrustedSignerError, match="is not in the keystore"):
        Updater(device).check_for_update(july(device_lab, "feeds-2024-07-newkey"))
    assert device.running.loaded.store_image.name == "certstore-2024"


def test_the_keystore_update_reboots_the_device_and_leaves_the_os_version_and_store(
    device_lab: Lab,
) -> None:
    device = device_on_july_10(device_lab)
    before = device_status(device)
    result = Updater(device).check_for_update(july(device_lab))
    after = device_status(device)
    assert result.outcome is UpdateOutcome.INSTALLED
    assert [(i.component, i.name) for i in result.images] == [
        (Component.KEYSTORE, "keystore-2024-07")]
    assert (before["boot_count"], after["boot_count"]) == (1, 2)
    assert before["os_version"] == after["os_version"] == OS_VERSION
    assert after["slots"]["store"] == before["slots"]["store"]  # type: ignore[index]


def test_after_it_images_signed_by_the_new_key_install(device_lab: Lab) -> None:
    device = device_on_july_10(device_lab)
    report = run_schedule(Updater(device), july(device_lab), hours=24)
    assert [c.outcome for c in report.checks] == ["installed", "no-update", "no-update"]
    result = Updater(device).check_for_update(july(device_lab, "feeds-2024-07-newkey"))
    assert result.outcome is UpdateOutcome.INSTALLED
    assert device.running.loaded.store_image.name == "certstore-2024-newkey"


def test_after_february_2025_the_new_key_is_still_trusted(device_lab: Lab) -> None:
    device = device_on_july_10(device_lab)
    Updater(device).check_for_update(july(device_lab))
    Updater(device).check_for_update(device_lab.feed())  # February 2025, old-key signed
    newer = device_lab.image("certstore-2025-02")
    signed_by_new = device_lab.manifest([newer], signer=device_lab.signer(IMAGE_SIGNING_2024_07))
    assert Updater(device).check_for_update(feed_of(signed_by_new, [newer])).outcome is (
        UpdateOutcome.NO_UPDATE)  # authenticated: nothing new to install
