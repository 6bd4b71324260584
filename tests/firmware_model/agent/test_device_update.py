"""The update agent's flow: SysEvents, deferral on the virtual clock, the check cadence."""

from __future__ import annotations

from dataclasses import dataclass, field
from errno import EACCES

import pytest

from firmware_model.agent.decisions import Limits, TrustState, UpdateSession
from firmware_model.agent.feed import MemoryFeed
from firmware_model.agent.updater import AgentSettings, CheckResult, UpdateOutcome, Updater
from firmware_model.device.appmanifest import AppManifest
from firmware_model.device.deferral import DeferringApp
from firmware_model.device.model import Device
from firmware_model.device.status import device_status
from firmware_model.device.sysevent import (
    DeviceApp,
    EventStatus,
    SysEvent,
    SysEventCall,
    SysEventInfo,
)
from firmware_model.errors import FeedError, ManifestMismatchError
from firmware_model.trust.components import Component
from hal.soft.machine import SoftwareMachine
from tests.firmware_model.devicelab import Lab, feed_of, small_device, without_clock

DAY = 24 * 3600.0


def timeline(device: Device) -> list[tuple[str, str]]:
    return [(info.event.value, info.status.value) for info in device.bus.sent]


def told(app: DeviceApp) -> list[SysEventInfo]:
    return [entry for entry in app.log if isinstance(entry, SysEventInfo)]


# --- the flow ------------------------------------------------------------------------------


def test_an_update_tells_the_apps_then_installs_through_a_reset(
    device: Device, device_lab: Lab
) -> None:
    app = device.bus.register(DeferringApp(0))
    result = Updater(device).check_for_update(device_lab.feed("RetailEval"))
    assert result.outcome is UpdateOutcome.INSTALLED
    started, pending, final = told(app)
    assert [(i.event, i.status) for i in told(app)] == [
        (SysEvent.UPDATE_STARTED, EventStatus.PENDING),
        (SysEvent.UPDATE_READY_FOR_INSTALL, EventStatus.PENDING),
        (SysEvent.UPDATE_READY_FOR_INSTALL, EventStatus.FINAL),
    ]
    # the allowance, 1,440 minutes from UpdateStarted (a board whose clock runs on its own
    # while the images are written offers a minute less)
    assert pending.max_deferral_minutes == (started.at + 1440 * 60 - pending.at) // 60
    assert pending.max_deferral_minutes >= 1439
    assert final.at - pending.at == pytest.approx(10.0, abs=1.0)  # nobody deferred
    assert [(i.component, i.name) for i in result.images] == [
        (Component.KEYSTORE, "keystore-2025-02"), (Component.STORE, "certstore-2025-02")]
    status = device_status(device)
    assert status["last_reset_cause"] == "SOFTWARE"
    assert status["boot_record"] == {"sequence": 3, "state": "confirmed"}
    slots = status["slots"]
    assert isinstance(slots, dict)
    assert {c: slots[c]["active"] for c in slots} == {"keystore": "B", "store": "B"}
    assert device.store.names == ["DigiCert_Global_Root_G2",
                                  "Microsoft_RSA_Root_Certificate_Authority_2017"]


def test_a_feed_with_nothing_new_sends_no_update_available(device: Device, device_lab: Lab) -> None:
    Updater(device).check_for_update(device_lab.feed())
    before = without_clock(device_status(device))
    app = device.bus.register(DeferringApp(60))
    result = Updater(device).check_for_update(device_lab.feed())
    assert result.outcome is UpdateOutcome.NO_UPDATE and result.offer is None
    assert [(i.event, i.status, i.update_type) for i in told(app)] == [
        (SysEvent.NO_UPDATE_AVAILABLE, EventStatus.COMPLETE, None)]
    assert without_clock(device_status(device)) == before


def test_a_store_only_update_keeps_the_keystore_slot(device_lab: Lab) -> None:
    device = small_device(device_lab)
    store = device_lab.image("certstore-2025-02")
    result = Updater(device).check_for_update(feed_of(device_lab.manifest([store]), [store]))
    assert [i.component for i in result.images] == [Component.STORE]
    active = device.running.record.active
    assert (active.keystore.slot, active.store.slot) == (0, 1)


# --- deferral ------------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "resume_after", "waited_minutes", "final_after_s"), [
    (1440, None, 1440, 86400),  # a full day: Final exactly 24 h after the device learned
    (5000, None, 1440, 86400),  # longer requests are truncated to the allowance
    (1440, 0, 0, 0),            # resume at once: Final at once
    (1440, 90, 90, 5400),       # the app's timer resumes after an hour and a half
    (30, 90, 30, 1810),         # the deferral runs out first: Pending again, Final 10 s later
])
def test_deferral_delays_the_reboot_on_the_device_clock(
    device: Device, device_lab: Lab, asked: int, resume_after: float | None,
    waited_minutes: float, final_after_s: float,
) -> None:
    app = device.bus.register(DeferringApp(asked, resume_after))
    result = Updater(device).check_for_update(device_lab.feed())
    pending, final = told(app)[1], told(app)[-1]
    assert final.status is EventStatus.FINAL
    grants = [c.granted_minutes for c in app.log if isinstance(c, SysEventCall)
              and c.call == "DeferEvent"]
    # a board whose clock also runs on its own (QEMU's counter) adds its milliseconds
    assert grants == [pytest.approx(min(asked, 1440), abs=0.1)]
    assert result.deferred_minutes == pytest.approx(waited_minutes, abs=0.1)
    assert final.at - pending.at == pytest.approx(final_after_s, abs=1.0)
    # the reboot: 10 s after Final
    assert result.boot is not None and result.boot.at == pytest.approx(final.at + 10, abs=1.0)
    assert result.boot.confirmed


def test_the_install_waits_for_the_longest_deferral_of_all_apps(device_lab: Lab) -> None:
    device = small_device(device_lab)
    for minutes in (60, 600, 120):
        device.bus.register(DeferringApp(minutes))
    start = device.machine.clock.monotonic()
    result = Updater(device).check_for_update(device_lab.feed())
    assert result.deferred_minutes == 600
    # Pending again at 600 minutes, nobody defers: Final 10 s later, the reboot 10 s after
    assert device.machine.clock.monotonic() - start == 600 * 60 + 20
    assert [status for _, status in timeline(device)][-3:] == ["Deferred", "Pending", "Final"]


def test_an_install_sends_no_complete_and_reports_each_apps_part(device_lab: Lab) -> None:
    device = small_device(device_lab)
    device.bus.register(DeferringApp([60, 60]), AppManifest.deferring("a"))
    device.bus.register(DeferringApp(30), AppManifest("b", system_event_notifications=True))
    result = Updater(device).check_for_update(device_lab.feed())
    assert "Complete" not in [status for _, status in timeline(device)]
    a, b = result.apps
    assert (a.registered, a.granted_minutes, b.registered, b.granted_minutes) == (
        True, 120, True, 0)
    assert [(c.call, c.errno) for c in b.calls] == [("DeferEvent", EACCES)]
    document = result.to_json()
    assert document["deferred_minutes"] == 120
    apps = document["apps"]
    assert isinstance(apps, list) and apps[1]["calls"][0]["errno"] == "EACCES"


# --- the check cadence ---------------------------------------------------------------------


@dataclass
class FlakyFeed:
    """A feed that is down for its first `down` fetches, then serves `inner`."""

    inner: MemoryFeed
    down: int
    calls: list[float] = field(default_factory=list)
    clock: SoftwareMachine | None = None

    @property
    def location(self) -> str:
        return "flaky"

    def fetch(self, name: str, limit: int, deadline: float | None = None) -> bytes:
        self.calls.append(self.clock.clock.wall() if self.clock else 0.0)
        if len(self.calls) <= self.down:
            raise FeedError("feed flaky: connection refused")
        return self.inner.fetch(name, limit, deadline)


@pytest.mark.parametrize("hours", [20.0, 24.0])
def test_a_failed_check_is_retried_one_check_interval_later(device_lab: Lab, hours: float) -> None:
    device = small_device(device_lab)
    machine = device.machine
    assert isinstance(machine, SoftwareMachine)
    feed = FlakyFeed(device_lab.feed(), down=1, clock=machine)
    agent = Updater(device, AgentSettings(check_interval_hours=hours))
    results: list[CheckResult] = agent.run_checks(feed, 3)
    assert isinstance(results[0], FeedError)
    assert not isinstance(results[1], Exception) and results[1].outcome is UpdateOutcome.INSTALLED
    assert not isinstance(results[2], Exception) and results[2].outcome is UpdateOutcome.NO_UPDATE
    first, second, third = feed.calls[0], feed.calls[1], feed.calls[-1]
    offer = results[1].offer
    assert offer is not None  # the next check comes one interval after the install's reboot
    assert (second - first, third - offer.install_at) == (hours * 3600, hours * 3600)


# --- the agent's decisions, without a device -----------------------------------------------


def test_a_session_accepts_the_images_it_wants_in_order(device: Device, device_lab: Lab) -> None:
    trust: TrustState = Updater(device).trust_state()
    session = UpdateSession(trust, Limits({c: 1 << 20 for c in Component}))
    feed = device_lab.feed()
    wanted = session.accept_manifest(feed.files["manifest.imagepackage"])
    assert [e.image_type for e in wanted] == [19, 22]  # the keystore first
    store_entry = wanted[1]
    with pytest.raises(ManifestMismatchError, match="not the next one"):
        session.accept_image(store_entry, feed.files[f"{store_entry.image_id}.imagepackage"])
    for entry in wanted:
        session.accept_image(entry, feed.files[f"{entry.image_id}.imagepackage"])
    assert session.complete and session.keyring is not trust.keyring
    with pytest.raises(ManifestMismatchError, match="not the next one"):  # nothing more wanted
        session.accept_image(store_entry, feed.files[f"{store_entry.image_id}.imagepackage"])
