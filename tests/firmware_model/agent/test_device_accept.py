"""A check in two halves: `fetch_update` accepts without writing, `install` writes what was
accepted, and only while the device still runs the boot it was accepted under."""

from __future__ import annotations

import pytest

from firmware_model.agent.updater import UpdateOutcome, Updater
from firmware_model.device.sysevent import EventStatus, SysEvent
from firmware_model.trust.components import Component
from hal.interfaces import ResetCause
from tests.firmware_model.devicelab import Lab, Outside, small_device


def test_fetch_update_accepts_every_image_and_writes_nothing(device_lab: Lab) -> None:
    device = small_device(device_lab)
    before = Outside.of(device)
    accepted = Updater(device).fetch_update(device_lab.feed())
    assert accepted is not None and accepted.booted is device.ram
    assert [s.component for s in accepted.staged] == [Component.KEYSTORE, Component.STORE]
    assert Outside.of(device) == before
    assert [(i.event, i.status) for i in device.bus.sent] == [
        (SysEvent.UPDATE_STARTED, EventStatus.PENDING)]


def test_install_of_an_accepted_update_ends_like_a_check(device_lab: Lab) -> None:
    device = small_device(device_lab)
    accepted = Updater(device).fetch_update(device_lab.feed())
    assert accepted is not None
    result = Updater(device).install(accepted)
    assert result.outcome is UpdateOutcome.INSTALLED
    assert [i.name for i in result.images] == ["keystore-2025-02", "certstore-2025-02"]
    assert [(i.event, i.status) for i in result.events] == [
        (SysEvent.UPDATE_READY_FOR_INSTALL, EventStatus.PENDING),
        (SysEvent.UPDATE_READY_FOR_INSTALL, EventStatus.FINAL)]
    assert Updater(device).fetch_update(device_lab.feed()) is None  # installed: nothing new


def test_an_update_accepted_before_the_last_boot_is_refused(device_lab: Lab) -> None:
    device = small_device(device_lab)
    accepted = Updater(device).fetch_update(device_lab.feed())
    assert accepted is not None
    device.machine.reset.request_reset(ResetCause.SOFTWARE)
    before = Outside.of(device)
    with pytest.raises(ValueError, match="before the device's last boot"):
        Updater(device).install(accepted)
    assert Outside.of(device) == before
