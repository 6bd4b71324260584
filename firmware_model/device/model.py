"""The device model on a `hal.interfaces.Machine`: its boot path, its store and TLS, revocation.

    device = Device(machine)                  # installs the boot path as the machine's boot hook
    device.provision(FactoryImages.from_build(Path("images/build")))   # a fresh device
    device.start()                            # or: boot an already provisioned one
    device.connect("127.0.0.1", 8443)         # TLS with the store, at the device's clock
    device.bus.register(DeferringApp(60))     # an app that defers system updates by an hour
                                              # (firmware_model.device.deferral)
    device.app_store.install_root_ca("Lab-Root", pem)   # the app certificate store (CertStore)

Everything the device knows between resets lives in flash and fuses; `device.ram` is what a
boot rebuilt from them (lost on every reset, rebuilt by the boot hook). The update agent
(`firmware_model.agent.updater`) works on a Device; `firmware_model.device.status` describes one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from firmware_model.device.app_certstore import AppCertStore
from firmware_model.device.app_certstore_area import AppStoreArea
from firmware_model.device.boot import Booted, BootReport, boot, failed_boot
from firmware_model.device.bootrecord import RecordArea, RecordState
from firmware_model.device.flash_layout import FlashLayout, Region, staging_regions
from firmware_model.device.provision import FactoryImages, provision
from firmware_model.device.sysevent import SysEventBus
from firmware_model.device.tls import DeviceSSLContext, DeviceStore, TlsSession, as_utc, connect
from firmware_model.errors import FwModelError, NotProvisionedError, RevokedError, TrustError
from firmware_model.trust.components import Component
from firmware_model.trust.fuses import raise_floor
from hal.errors import HalError
from hal.interfaces import Machine, ResetCause


@dataclass
class Device:
    """A device model on `machine` (see module doc). Creating one installs its boot hook."""

    machine: Machine
    layout: FlashLayout | None = None
    records: RecordArea | None = None
    bus: SysEventBus = field(default_factory=SysEventBus)  # the apps, as SysEvent reaches them
    ram: Booted | None = None
    boot_failure: FwModelError | None = None
    last_boot: BootReport | None = None  # the last boot's report, good or failed

    def __post_init__(self) -> None:
        if self.layout is None:
            self.layout = FlashLayout.for_geometry(self.machine.flash.geometry)
        if self.records is None:
            self.records = RecordArea(self.layout)
        if self.bus.clock is None:
            self.bus.clock = self.machine.clock
        self.machine.set_boot_hook(self.on_reset)

    # -- boot ----------------------------------------------------------------------------------

    @property
    def flash_layout(self) -> FlashLayout:
        assert self.layout is not None
        return self.layout

    @property
    def record_area(self) -> RecordArea:
        assert self.records is not None
        return self.records

    def boot(self) -> BootReport:
        """Run the boot path now (without a reset); NotProvisionedError / BootError if it fails."""
        self.ram, self.boot_failure = None, None
        try:
            self.ram = boot(self.machine, self.flash_layout, self.record_area)
        except FwModelError as error:
            self.boot_failure = error
            self.last_boot = self._failed(error)
            self.log(f"[boot] halted: {error}")
            raise
        self.last_boot = self.ram.report
        return self.ram.report

    def _failed(self, error: FwModelError) -> BootReport:
        """The report of a boot that failed with `error` (what the device can still read)."""
        machine, at, cause, sequence = self.machine, 0.0, ResetCause.POWER_ON, None
        with contextlib.suppress(HalError, FwModelError):  # a HAL that fails too: what was read
            at = machine.clock.wall()
            cause = machine.reset.last_cause()
            record = self.record_area.read(machine.flash)
            sequence = None if record is None else record.sequence
        return failed_boot(cause, at, sequence, error)

    def start(self) -> BootReport:
        """Boot if this model has not booted yet (a process attaching to a powered device)."""
        return self.running.report if self.ram is not None else self.boot()

    def on_reset(self, _machine: Machine) -> None:
        """The boot hook: RAM is lost; a failed boot leaves the device halted, not raising."""
        with contextlib.suppress(FwModelError):
            self.boot()

    @property
    def running(self) -> Booted:
        """The booted state; the boot failure (or NotProvisionedError) if there is none."""
        if self.ram is None:
            raise self.boot_failure or NotProvisionedError("the device has not booted")
        return self.ram

    def provision(self, images: FactoryImages) -> BootReport:
        """Provision a fresh device and boot it."""
        provision(self.machine, self.flash_layout, self.record_area, images)
        return self.boot()

    # -- the store -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The device's clock."""
        return as_utc(self.machine.clock.wall())

    @property
    def store(self) -> DeviceStore:
        """The OS trusted root store the device booted with (TLS, updates)."""
        return self.running.loaded.store

    def ssl_context(self) -> DeviceSSLContext:
        """A TLS client context trusting the store at the device's clock (now)."""
        return self.store.ssl_context(self.now())

    def connect(self, host: str, port: int, server_name: str | None = None) -> TlsSession:
        """A TLS handshake from the device to `host:port`; TlsError if it fails."""
        try:
            session = connect(self.store, self.now(), host, port, server_name)
        except TrustError as error:
            self.log(f"[tls] {error}")
            raise
        self.log(f"[tls] connected to {session.describe()}")
        return session

    # -- the app certificate store -------------------------------------------------------------

    @property
    def app_store(self) -> AppCertStore:
        """The app certificate store (Applibs CertStore) in its own flash region; not the OS
        trusted root store that `store` is."""
        return AppCertStore(self.machine.flash, AppStoreArea(self.flash_layout.app_store),
                            self.log)

    # -- revocation ----------------------------------------------------------------------------

    def revoke(self, component: Component, version: int) -> bool:
        """Revoke every security version of `component` below `version` (raise its counter).

        RevokedError if the running, confirmed image is itself below `version`. True if fuses
        were blown.
        """
        running = self.running
        current = running.loaded.image(component).security_version
        if running.record.state is not RecordState.CONFIRMED or current < version:
            raise RevokedError(f"revoking {component.value} versions below {version} would "
                               f"revoke the running image (version {current})")
        raised = raise_floor(self.machine.otp, component, version)
        self.log(f"[trust] {component.value} versions below {version} revoked")
        return raised

    def staging(self) -> list[Region]:
        """The regions the next update may write before it commits (see `flash_layout`)."""
        newest = self.record_area.newest(self.machine.flash)
        active = self.running.record.active
        slots = {c: (active[c].slot or 0) for c in Component}
        return staging_regions(self.flash_layout, slots, None if newest is None else newest[1])

    def log(self, line: str) -> None:
        """A line on the device's console."""
        self.machine.console.log(line)


DeviceFactory = Callable[[Machine], Device]
