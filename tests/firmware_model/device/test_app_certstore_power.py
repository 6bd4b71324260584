"""The app certificate store across power cuts and resets: a cut before, after or tearing every
flash operation of an install, a replace, a delete and a move leaves exactly the old store or
exactly the new one (never a mix, never garbage), and the store keeps working after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from firmware_model.device.app_certstore import AppCertStore
from firmware_model.device.app_certstore_area import AppStoreArea, CopyFormat, decode_copy
from firmware_model.device.flash_layout import FlashLayout
from hal.errors import PowerLoss
from hal.interfaces import ResetCause
from hal.soft.cut_sweep import sweep_power_cuts
from hal.soft.machine import SoftwareMachine
from hal.soft.power_cuts import CutMode, CutPoint
from tests.firmware_model.certlab import Client, certificate, der, der_of_size, pem
from tests.firmware_model.devicelab import SMALL, Lab, small_device

LAYOUT = FlashLayout.for_geometry(SMALL)
Operation = Callable[[AppCertStore], object]


@pytest.fixture(scope="module")
def client() -> Client:
    return Client.make()


@pytest.fixture
def machine() -> Iterator[SoftwareMachine]:
    with SoftwareMachine(None, SMALL) as soft:
        yield soft


def store_on(machine: SoftwareMachine) -> AppCertStore:
    return AppCertStore(machine.flash, AppStoreArea(LAYOUT.app_store))


def populate(store: AppCertStore, client: Client) -> None:
    """A root CA, a client certificate with an encrypted key, and another root CA."""
    store.install_root_ca("root", pem(certificate("Root")))
    store.install_client("wifi", pem(client.cert), client.key_pem(b"pw"), b"pw")
    store.install_root_ca("spare", der(certificate("Spare")))


def sweep(machine: SoftwareMachine, operation: Operation) -> tuple[int, int]:
    """Cut power at every flash operation of `operation` (every mode) and check each result:
    the store reads as exactly the old or the new one, and takes a further install."""
    before = store_on(machine).state().entries
    snap = machine.snapshot()
    operation(store_on(machine))
    after = store_on(machine).state().entries
    machine.restore(snap)
    assert before != after
    seen = {"old": 0, "new": 0}

    def check(soft: SoftwareMachine, point: CutPoint | None) -> None:
        store = store_on(soft)
        entries = store.state().entries  # reads, never raises: garbage would be a failure
        assert entries in (before, after), point
        if point is None:
            return  # the uninterrupted run (whose flash operations the sweep is counting)
        seen["old" if entries == before else "new"] += 1
        store.install_root_ca("later", der(certificate("Later")))  # the store still works
        assert store_on(soft).state().find("later") is not None
        assert [e for e in store_on(soft).state().entries if e.identifier != "later"] == [
            e for e in entries if e.identifier != "later"]

    result = sweep_power_cuts(machine, lambda soft: operation(store_on(soft)), check)
    assert len(result.points) == result.ops * len(CutMode) and result.ops >= 2
    return seen["old"], seen["new"]


@pytest.mark.parametrize("operation", [
    pytest.param(lambda s: s.install_root_ca("fresh", pem(certificate("Fresh"))), id="install"),
    pytest.param(lambda s: s.install_root_ca("wifi", der(certificate("Was wifi"))),
                 id="replace-client-with-root"),
    pytest.param(lambda s: s.delete("root"), id="delete"),
    pytest.param(lambda s: s.move("wifi", "root"), id="move-onto-existing"),
    pytest.param(lambda s: s.move("spare", "brand-new"), id="move-onto-new"),
])
def test_a_power_cut_at_any_flash_operation_leaves_the_old_or_the_new_store(
        machine: SoftwareMachine, client: Client, operation: Operation) -> None:
    populate(store_on(machine), client)
    old, new = sweep(machine, operation)
    assert old > 0 and new > 0  # both outcomes happen: the switch is one page program


def test_a_power_cut_while_a_full_store_is_rewritten_leaves_the_old_or_the_new_store(
        machine: SoftwareMachine) -> None:
    store = store_on(machine)
    for identifier, size in (("one", 8192), ("two", 8192), ("three", 7800)):
        store.install_root_ca(identifier, der_of_size(size))
    old, new = sweep(machine, lambda s: s.install_root_ca("one", der_of_size(8100, "Next")))
    assert old > 100 and new > 0  # about 7 sector erases and 96 page programs


def test_the_first_install_on_erased_flash_is_power_safe_too(machine: SoftwareMachine) -> None:
    old, new = sweep(machine, lambda s: s.install_root_ca("first", der(certificate())))
    assert old > 0 and new > 0


def test_a_copy_torn_anywhere_by_random_bits_is_never_taken_for_a_store(
        machine: SoftwareMachine, client: Client) -> None:
    store = store_on(machine)
    populate(store, client)
    before = store.state().entries
    snap = machine.snapshot()
    start = machine.faults.op_count
    store.delete("wifi")
    ops = machine.faults.op_count - start
    for op in range(ops):
        for seed in range(4):
            machine.restore(snap)
            machine.faults.arm(op, CutMode.TORN, bit_seed=seed)
            with pytest.raises(PowerLoss):
                store_on(machine).delete("wifi")
            machine.power_on()
            assert store_on(machine).state().entries in (before, tuple(
                e for e in before if e.identifier != "wifi"))


def test_a_copy_whose_crc_holds_but_that_is_not_canonical_is_not_valid(
        machine: SoftwareMachine) -> None:
    store = store_on(machine)
    store.install_root_ca("kept", der(certificate()))
    entries = [{"kind": 1, "identifier": name, "certificate": b"x", "key": b"", "password": b""}
               for name in ("z", "a")]  # out of order: no commit ever writes that
    forged = CopyFormat.build({"body": {"value": {"header": {"sequence": 9},
                                                  "entries": entries}}})
    assert CopyFormat.parse(forged).body.value.header.sequence == 9  # its CRC holds
    assert decode_copy(forged) is None
    region = LAYOUT.app_store[1]  # the standby copy, with a higher sequence than the store's
    machine.flash.erase(region.offset, region.size)
    machine.flash.program(region.offset, forged)
    assert store.identifiers() == ["kept"]


def test_the_store_survives_a_reset_and_the_device_still_boots(device_lab: Lab,
                                                               client: Client) -> None:
    device = small_device(device_lab)
    populate(device.app_store, client)
    device.app_store.move("spare", "moved")
    before = device.app_store.state()
    device.machine.reset.request_reset(ResetCause.SOFTWARE)
    assert device.ram is not None and device.machine.reset.last_cause() is ResetCause.SOFTWARE
    assert device.app_store.state() == before
    assert device.app_store.identifiers() == ["moved", "root", "wifi"]


def test_a_device_provisioned_before_the_app_store_existed_has_an_empty_one(
        device_lab: Lab) -> None:
    device = small_device(device_lab)
    for region in device.flash_layout.app_store:  # provisioning never writes there: erased
        assert device.machine.flash.read(region.offset, 64) == b"\xff" * 64
    assert (device.app_store.count(), device.app_store.available_space()) == (0, 24514)
