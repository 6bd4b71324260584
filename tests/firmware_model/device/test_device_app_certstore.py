"""The app certificate store on whatever `--hal` names (the software machine, the emulator, the
C board agents, a board): it lives in the device's NOR flash, so it works, and survives a reset,
wherever the flash is."""

from __future__ import annotations

import errno

import pytest

from firmware_model.device.app_certstore import CertKind
from firmware_model.device.model import Device
from firmware_model.device.status import device_status
from firmware_model.errors import CertStoreError
from hal.interfaces import ResetCause
from tests.firmware_model.certlab import Client, certificate, der, der_of_size, pem


@pytest.fixture
def emptied(device: Device) -> Device:
    """The provisioned device with an empty app store (a board may hold certificates)."""
    for identifier in device.app_store.identifiers():
        device.app_store.delete(identifier)
    return device


def test_the_app_store_installs_replaces_moves_and_deletes_on_this_hal(emptied: Device) -> None:
    store = emptied.app_store
    client = Client.make()
    assert store.available_space() == 24514
    store.install_root_ca("root", der_of_size(8192))
    assert store.install_client("root", pem(client.cert), client.key_pem(b"pw"), b"pw") is \
        CertKind.ROOT_CA
    store.install_root_ca("spare", pem(certificate("Spare")))
    assert store.move("root", "spare") is CertKind.ROOT_CA
    assert store.identifiers() == ["spare"] and store.info("spare").kind is CertKind.CLIENT
    with pytest.raises(CertStoreError) as caught:
        store.delete("root")
    assert caught.value.errno == errno.ENOENT
    store.delete("spare")
    assert store.available_space() == 24514


def test_the_app_store_survives_a_reset_and_status_shows_it_apart_from_the_os_store(
        emptied: Device) -> None:
    emptied.app_store.install_root_ca("kept", der(certificate("Kept")))
    emptied.machine.reset.request_reset(ResetCause.SOFTWARE)
    emptied.start()
    status = device_status(emptied)
    apps, os_store = status["app_certificate_store"], status["store"]
    assert isinstance(apps, dict) and isinstance(os_store, dict)
    assert [c["id"] for c in apps["certificates"]] == ["kept"]
    assert apps["available_space"] == 24514 - len(der(certificate("Kept")))
    assert os_store["label"] == "OS trusted root store" and os_store["certificates"]
    assert "kept" not in {c["name"] for c in os_store["certificates"]}
