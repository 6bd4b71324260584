"""What a device is running, as `fwmodel status --json` prints it: the OS version, boot count and
uptime, slots, images, security versions (fused and running), the OS trusted root store, the
app certificate store, the last boot and reset."""

from __future__ import annotations

from firmware_model.device.app_certstore import AVAILABLE_WHEN_EMPTY, CAPACITY
from firmware_model.device.bootrecord import BootRecord, RecordState
from firmware_model.device.flash_layout import slot_name
from firmware_model.device.model import Device
from firmware_model.device.tls import iso
from firmware_model.trust.components import Component
from firmware_model.trust.fuses import floors, read_root_hash
from hal.errors import HalError

#: The version of the Azure Sphere OS the model stands for. The model installs no OS images
#: (only the trusted keystore and the certificate store), so no update changes it, as neither
#: the July 2024 keystore update nor the February 2025 store update changed a real device's.
#: 24.03 is the last OS release found before February 2025 (Retail Eval on 5 March 2024, see
#: docs/device.md, "OS version").
OS_VERSION = "24.03"

#: How status names the store TLS and updates use (a real device's status does not list it).
OS_STORE_LABEL = "OS trusted root store"
APP_STORE_LABEL = "app certificate store"


def app_store_status(device: Device) -> dict[str, object]:
    """The app certificate store: each certificate, and the space free of what an empty store
    has (`app_certstore`)."""
    entries, free = device.app_store.listing()
    return {"label": APP_STORE_LABEL, "certificates": [info.to_json() for info in entries],
            "available_space": free,
            "available_when_empty": AVAILABLE_WHEN_EMPTY, "capacity": CAPACITY}


def device_status(device: Device) -> dict[str, object]:
    """The device's status (it need not have booted: then why not, whether it is provisioned,
    and the report of the boot that failed)."""
    at = device.now()
    machine = device.machine
    uptime = machine.reset.uptime()
    base: dict[str, object] = {
        "os_version": OS_VERSION,
        "boot_count": machine.reset.boot_count(),
        "uptime_s": None if uptime is None else round(uptime, 3),
        "device_time": iso(at),
        "last_reset_cause": machine.reset.last_cause().name,
    }
    if device.ram is None:
        provisioned = (device.record_area.read(machine.flash) is not None
                       and read_root_hash(machine.otp) is not None)
        failure, report = device.boot_failure, device.last_boot
        return {"provisioned": provisioned, "booted": False, **base,
                "problem": None if failure is None else str(failure),
                "last_boot": None if report is None else report.to_json()}
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
        "store": {"label": OS_STORE_LABEL,
                  "certificates": [root.to_json(at) for root in running.loaded.store.roots]},
        "app_certificate_store": app_store_status(device),
        "last_boot": running.report.to_json(),
    }


def interrupted_state(device: Device, before: BootRecord | None) -> str:
    """What an interrupted command left the device as, for its last line. An interrupt is a
    power cut to the device (the power-cut sweep shows every cut leaves the old or the new set,
    whole); `before` is the boot record the command started with (None: none yet)."""
    machine = device.machine
    try:
        after = device.record_area.read(machine.flash)
        fused = read_root_hash(machine.otp)
    except HalError as error:
        return f"unknown ({' '.join(str(error).split())}); ask the device with status"
    if after is None:
        fuses = " (its root-key hash is fused: provision it again)" if fused else ""
        return f"not provisioned{fuses}"
    if before is None:
        return "provisioned"
    if after.sequence == before.sequence:
        return "unchanged: the device boots what it booted (no update was installed)"
    if after.state is RecordState.TRIAL:
        return ("installed, trial pending: the next boot tries the new images and falls back "
                "to the old ones if they fail")
    if after.active == before.active:
        return "not installed: the new images failed their trial boot; the old ones run"
    return "installed: the new images booted and are confirmed"
