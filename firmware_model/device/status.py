"""What a device is running, as `fwmodel status --json` prints it: slots, images, security
versions (fused and running), the OS trusted root store, the last boot and reset."""

from __future__ import annotations

from firmware_model.device.flash_layout import slot_name
from firmware_model.device.model import Device
from firmware_model.device.tls import iso
from firmware_model.trust.components import Component
from firmware_model.trust.fuses import floors, read_root_hash


def device_status(device: Device) -> dict[str, object]:
    """The device's status (it need not have booted: then why not, and whether it is
    provisioned)."""
    at = device.now()
    machine = device.machine
    base: dict[str, object] = {
        "device_time": iso(at),
        "last_reset_cause": machine.reset.last_cause().name,
    }
    if device.ram is None:
        provisioned = (device.record_area.read(machine.flash) is not None
                       and read_root_hash(machine.otp) is not None)
        failure = device.boot_failure
        return {"provisioned": provisioned, "booted": False, **base,
                "problem": None if failure is None else str(failure)}
    running = device.ram
    counters = floors(machine.otp)
    installed = running.loaded.installed()
    return {
        "provisioned": True, "booted": True, **base,
        "boot_record": {"sequence": running.record.sequence,
                        "state": running.record.state.name.lower()},
        "slots": {c.value: {"active": slot_name(running.record.active[c].slot or 0),
                            "image": installed[c].to_json()} for c in Component},
        "security_versions": {c.value: {"fused": counters[c],
                                        "running": installed[c].security_version}
                              for c in Component},
        "store": {"certificates": [root.to_json(at) for root in running.loaded.store.roots]},
        "last_boot": running.report.to_json(),
    }
