"""Provisioning and the boot path: trial, confirm, fallback, counters, reset causes."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization

from firmware_model.agent.updater import UpdateOutcome, Updater
from firmware_model.device.bootrecord import SlotRef
from firmware_model.device.model import Device
from firmware_model.device.provision import FactoryImages
from firmware_model.device.slots import write_slot
from firmware_model.device.status import device_status
from firmware_model.device.sysevent import DeviceApp, EventStatus, SysEventInfo
from firmware_model.errors import (
    BootError,
    ImageFormatError,
    NotProvisionedError,
    ProvisioningError,
    RevokedError,
    UnfitImageError,
    UntrustedSignerError,
)
from firmware_model.image.build import build_package
from firmware_model.image.cramfs import build_cramfs
from firmware_model.image.sections import ImageType
from firmware_model.trust.components import Component
from firmware_model.trust.fuses import floors, read_root_hash
from hal.interfaces import Machine, ResetCause
from hal.soft.machine import SoftwareMachine
from tests.firmware_model.devicelab import (
    SMALL,
    STORE_COMPONENT,
    Lab,
    Outside,
    small_device,
    stranger,
)


def corrupt(device: Device, component: Component, which: str = "active") -> None:
    """Clear a bit near the middle of the image the newest record names (NOR: 1 -> 0 only).

    The first byte from the middle on that has a bit set is changed: a zero byte cannot be
    (the keys are random, so a fixed offset would sometimes leave the image intact)."""
    record = device.record_area.read(device.machine.flash)
    assert record is not None
    ref = record.active[component] if which == "active" else record.fallback[component]
    assert ref.slot is not None
    start = device.flash_layout.slot(component, ref.slot).offset
    image = device.machine.flash.read(start, ref.length)
    at = next(i for i in range(ref.length // 2, ref.length) if image[i])
    device.machine.flash.program(start + at, bytes([image[at] & (image[at] - 1)]))


def hook_before_boot(device: Device, action: Callable[[], None]) -> None:
    """Run `action` on the next reset, before the boot path (then boot as usual)."""
    def hook(machine: Machine) -> None:
        action()
        device.machine.set_boot_hook(device.on_reset)
        device.on_reset(machine)
    device.machine.set_boot_hook(hook)


# --- provisioning --------------------------------------------------------------------------


def test_provisioning_fuses_the_root_and_boots_the_pre_2025_store(
    device: Device, device_lab: Lab
) -> None:
    status = device_status(device)
    assert read_root_hash(device.machine.otp) == device_lab.factory.root_hash
    assert status["boot_record"] == {"sequence": 1, "state": "confirmed"}
    slots = status["slots"]
    assert isinstance(slots, dict)
    assert {c: slots[c]["active"] for c in slots} == {"keystore": "A", "store": "A"}
    assert status["security_versions"] == {"keystore": {"fused": 1, "running": 1},
                                           "store": {"fused": 1, "running": 1}}
    assert device.store.names == ["Baltimore_CyberTrust_Root", "DigiCert_Global_Root_G2",
                                  "Microsoft_RSA_Root_Certificate_Authority_2017"]


@pytest.mark.fresh_machine
def test_provisioning_twice_is_refused_and_changes_nothing(
    device: Device, device_lab: Lab
) -> None:
    before = Outside.of(device)
    with pytest.raises(ProvisioningError, match="provisioned already"):
        device.provision(device_lab.factory)
    assert Outside.of(device) == before


def test_provisioning_checks_everything_before_writing_anything(device_lab: Lab) -> None:
    untrusted_store = device_lab.store(device_lab.roots(), 1, signer=stranger())
    bad = [
        FactoryImages(bytes(32), device_lab.image("keystore-2024"), device_lab.image(
            "certstore-2024")),
        FactoryImages(device_lab.factory.root_hash, device_lab.image("keystore-2024"),
                      untrusted_store),
    ]
    for images in bad:
        device = small_device()
        with pytest.raises(UntrustedSignerError):
            device.provision(images)
        machine = device.machine
        assert machine.flash.hash(0, SMALL.size) == SoftwareMachine(None, SMALL).flash.hash(
            0, SMALL.size)
        assert all(machine.otp.read_word(i) == 0 for i in range(machine.otp.word_count))


@pytest.mark.parametrize("component", ["keystore", "store"])
def test_provisioning_refuses_a_security_version_the_counters_cannot_hold(
    device_lab: Lab, component: str
) -> None:
    """Boot would refuse such an image: provisioning it would brick the device for good (fused,
    committed, never booting, never provisioned again). Refused before anything is written."""
    lab = device_lab
    keystore, store = lab.image("keystore-2024"), lab.image("certstore-2024")
    if component == "store":
        store = lab.store(lab.roots(), 65)
    else:
        keystore = lab.keystore(security_version=65)
    device = small_device()
    with pytest.raises(UnfitImageError, match="holds at most 64"):
        device.provision(FactoryImages(lab.factory.root_hash, keystore, store))
    machine = device.machine
    assert machine.flash.hash(0, SMALL.size) == SoftwareMachine(None, SMALL).flash.hash(
        0, SMALL.size)
    assert all(machine.otp.read_word(i) == 0 for i in range(machine.otp.word_count))
    device.provision(lab.factory)  # the device is still fresh
    assert device.running.report.used == "active"


def test_provisioning_refuses_a_store_file_holding_two_roots(device_lab: Lab) -> None:
    """certs/Bundle.pem with two roots: refused whole (ImageFormatError) before anything is
    written, never installed as its first root."""
    lab = device_lab
    payload = build_cramfs({"certs/Bundle.pem": b"".join(
        certificate.public_bytes(serialization.Encoding.PEM) for _, certificate in lab.roots())})
    store = build_package(payload, image_type=ImageType.UpdateCertStore,
                          component_id=STORE_COMPONENT, image_id=uuid.uuid4(),
                          signer=lab.signer(), name="bundle-store", security_version=1)
    device = small_device()
    with pytest.raises(ImageFormatError, match=r"certs/Bundle\.pem holds 3 certificates, not one"):
        device.provision(FactoryImages(lab.factory.root_hash, lab.image("keystore-2024"), store))
    machine = device.machine
    assert machine.flash.hash(0, SMALL.size) == SoftwareMachine(None, SMALL).flash.hash(
        0, SMALL.size)
    assert all(machine.otp.read_word(i) == 0 for i in range(machine.otp.word_count))


def test_a_device_never_provisioned_does_not_boot() -> None:
    device = small_device()
    with pytest.raises(NotProvisionedError):
        device.boot()
    assert device_status(device)["provisioned"] is False


# --- trial, confirm, counters --------------------------------------------------------------


def test_counters_rise_only_after_the_trial_boot_confirmed_the_new_store(device_lab: Lab) -> None:
    device = small_device(device_lab)
    seen: list[dict[Component, int]] = []

    def app(info: SysEventInfo, _app: DeviceApp) -> None:
        if info.status is EventStatus.FINAL:
            seen.append(floors(device.machine.otp))

    device.bus.register(app)
    result = Updater(device).check_for_update(device_lab.feed())
    assert seen == [{Component.KEYSTORE: 1, Component.STORE: 1}]
    assert result.boot is not None and result.boot.confirmed
    assert dict(result.boot.raised) == {"store": 2}
    assert floors(device.machine.otp) == {Component.KEYSTORE: 1, Component.STORE: 2}
    lines = device.machine.console.lines()
    committed = next(i for i, line in enumerate(lines) if "committed (trial)" in line)
    confirmed = next(i for i, line in enumerate(lines) if "trial confirmed" in line)
    assert committed < confirmed and "raised to store 2" in lines[confirmed]


def test_a_trial_that_does_not_authenticate_falls_back_to_the_old_set(device_lab: Lab) -> None:
    device = small_device(device_lab)
    hook_before_boot(device, lambda: corrupt(device, Component.STORE))
    result = Updater(device).check_for_update(device_lab.feed())
    assert result.outcome is UpdateOutcome.REVERTED
    assert result.boot is not None and result.boot.used == "fallback"
    assert "store slot B does not hold the committed image" in str(result.boot.problem)
    assert device.store.names[0] == "Baltimore_CyberTrust_Root"
    assert floors(device.machine.otp) == {Component.KEYSTORE: 1, Component.STORE: 1}
    record = device.running.record
    assert record.active == record.fallback and record.active.store.slot == 0
    device.boot()  # the revert is committed: later boots come up on the old set directly
    assert device.running.report.used == "active"


def test_boot_authenticates_what_the_record_names_even_when_its_hash_matches(
    device_lab: Lab,
) -> None:
    device = small_device(device_lab)
    tampered = bytearray(device_lab.image("certstore-2025-02"))
    tampered[100] ^= 0x01
    digest = write_slot(device.machine.flash, device.flash_layout, Component.STORE, 1,
                        bytes(tampered))
    trial = device.running.record.trial({Component.STORE: SlotRef(1, len(tampered), digest)})
    device.record_area.commit(device.machine.flash, trial)
    report = device.boot()
    assert report.used == "fallback" and "SignatureError" in str(report.problem)
    assert device.running.record.active.store.slot == 0


def test_a_device_with_no_set_that_authenticates_halts(device_lab: Lab) -> None:
    device = small_device(device_lab)

    def break_both() -> None:
        corrupt(device, Component.STORE)
        corrupt(device, Component.KEYSTORE, "fallback")

    hook_before_boot(device, break_both)
    with pytest.raises(BootError, match="fallback fails"):
        Updater(device).check_for_update(device_lab.feed())
    status = device_status(device)
    assert status["provisioned"] is True and status["booted"] is False
    assert "fallback fails" in str(status["problem"])


def test_once_confirmed_an_older_store_cannot_be_fallen_back_to(device_lab: Lab) -> None:
    device = small_device(device_lab)
    Updater(device).check_for_update(device_lab.feed())
    corrupt(device, Component.STORE)  # the confirmed new store rots; the old one is sv 1 < 2
    with pytest.raises(BootError, match="RollbackError"):
        device.boot()


# --- reset causes, revocation --------------------------------------------------------------


def test_each_boot_reports_its_reset_cause(device_lab: Lab) -> None:
    device = small_device(device_lab)
    assert device.running.report.cause is ResetCause.POWER_ON
    Updater(device).check_for_update(device_lab.feed())
    assert device.running.report.cause is ResetCause.SOFTWARE
    machine = device.machine
    assert isinstance(machine, SoftwareMachine)
    machine.power_off()
    machine.power_on()
    assert device.running.report.cause is ResetCause.POWER_LOSS
    machine.watchdog.start(5)
    machine.clock.advance(6)
    assert device.running.report.cause is ResetCause.WATCHDOG
    assert device_status(device)["last_reset_cause"] == "WATCHDOG"


def test_revoking_versions_below_the_running_one_raises_the_counter(device_lab: Lab) -> None:
    device = small_device(device_lab)
    with pytest.raises(RevokedError, match="would revoke the running image"):
        device.revoke(Component.STORE, 2)
    Updater(device).check_for_update(device_lab.feed())
    assert not device.revoke(Component.STORE, 2)  # the confirm already raised it
    assert device.revoke(Component.KEYSTORE, 1) is False
    before = floors(device.machine.otp)
    with pytest.raises(RevokedError):
        device.revoke(Component.KEYSTORE, 2)
    assert floors(device.machine.otp) == before


@pytest.mark.parametrize("version", [65, 2**32 - 1])
def test_boot_falls_back_from_a_slot_whose_version_the_counter_cannot_hold(
    device_lab: Lab, version: int
) -> None:
    """A trial set the agent would have refused (written here behind its back): the boot path
    refuses it too and falls back, instead of halting on a counter it cannot raise."""
    device = small_device(device_lab)
    running = device.running.record
    store = device_lab.store(device_lab.roots("certstore-2025-02"), version)
    free = 1 - (running.active.store.slot or 0)
    digest = write_slot(device.machine.flash, device.flash_layout, Component.STORE, free, store)
    trial = running.trial({Component.STORE: SlotRef(free, len(store), digest)})
    device.record_area.commit(device.machine.flash, trial)
    device.machine.reset.request_reset(ResetCause.SOFTWARE)
    report = device.running.report
    assert report.reverted and "UnfitImageError" in str(report.problem)
    assert floors(device.machine.otp)[Component.STORE] == 1
    assert device.running.record.active == running.active
