"""Sideloaded images (the device REST API's `update/stage` and `update/install`), accepted by
the update agent's own decisions: the entry an image claims for itself pins it exactly; power
cut at every flash operation of an install and the restart that boots it leaves the old store
or the new one, whole, and the device boots."""

from __future__ import annotations

import hashlib
from typing import cast

import pytest

from firmware_model.agent.sideload import Sideload, claimed_entry
from firmware_model.agent.updater import Updater
from firmware_model.device.model import Device
from firmware_model.errors import ImageFormatError, RestartRequiredError
from firmware_model.image.package import parse_package
from firmware_model.trust.components import Component
from hal.interfaces import ResetCause
from hal.soft.cut_sweep import sweep_power_cuts
from hal.soft.machine import SoftwareMachine
from hal.soft.power_cuts import CutPoint
from tests.firmware_model.devicelab import Lab, small_device


def test_an_image_claims_the_entry_that_pins_its_own_bytes(device_lab: Lab) -> None:
    data = device_lab.image("certstore-2025-02")
    entry = claimed_entry(data)
    image = parse_package(data)
    assert (entry.image_id, entry.component_id, entry.image_type, entry.size,
            entry.security_version, entry.sha256) == (
        image.image_id, image.component_id, 22, len(data), 2, hashlib.sha256(data).digest())
    with pytest.raises(ImageFormatError):
        claimed_entry(data[:40])


def test_a_second_install_waits_for_the_restart(device_lab: Lab) -> None:
    sideload = Sideload(Updater(small_device(device_lab)))
    assert sideload.stage(device_lab.image("certstore-2025-02")) is Component.STORE
    assert sideload.install() is not None
    assert sideload.restart_required()
    with pytest.raises(RestartRequiredError):
        sideload.stage(device_lab.image("keystore-2025-02"))


def test_a_power_cut_anywhere_in_an_install_and_its_restart_leaves_a_whole_store(
        device_lab: Lab) -> None:
    old, new = device_lab.image("certstore-2024"), device_lab.image("certstore-2025-02")
    machine = cast(SoftwareMachine, small_device(device_lab).machine)
    devices: list[Device] = []

    def work(soft: SoftwareMachine) -> None:
        device = Device(soft)
        devices.append(device)
        device.boot()
        sideload = Sideload(Updater(device))
        sideload.stage(new)
        sideload.install()
        soft.reset.request_reset(ResetCause.SOFTWARE)

    outcomes = set()

    def check(soft: SoftwareMachine, point: CutPoint | None) -> None:
        device = devices[-1]  # its boot hook ran at the power-up after the cut
        store = device.running.loaded.store_image.data
        assert store in (old, new), point
        if point is None:
            assert store == new
        outcomes.add(store == new)
        soft.reset.request_reset(ResetCause.SOFTWARE)  # and it boots again, the same or newer
        assert device.running.loaded.store_image.data in ((new,) if store == new else (old, new))

    result = sweep_power_cuts(machine, work, check)
    assert result.ops > 0 and len(result.points) == 3 * result.ops
    assert outcomes == {False, True}
