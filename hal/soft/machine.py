"""The software machine: a whole MT3620-like device in-process, QEMU-style.

Devices sit on a :class:`~hal.soft.memory_map.MemoryMap`: a NOR flash (16 MiB, 4 KiB sectors,
256-byte pages by default), an OTP fuse bank, a reset-cause register. Around them: a virtual
clock, a watchdog on that clock, a line console, a power rail and a fault injector.

What the device model uses::

    m = SoftwareMachine(Path("dev.flash"), FlashGeometry(size=..., sector_size=..., page_size=...))
    m.set_boot_hook(boot)          # boot(m) runs on every reset, watchdog bite and power_on()
    m.flash.program(off, data); m.flash.erase(off, n); m.flash.read(off, n); m.flash.hash(off, n)
    m.otp.blow(word, bits); m.reset.request_reset(); m.reset.last_cause()
    m.reset.boot_count(); m.reset.uptime()   # boots since power-up, seconds since the last
    m.clock.advance(86_400); m.clock.sleep(1.5); m.clock.set_wall(datetime(...))
    m.faults.arm(op, CutMode.TORN); m.faults.op_count   # see hal.soft.power_cuts
    snap = m.snapshot(); ...; m.restore(snap)
    m.power_off(); m.power_on()    # power_on re-runs boot with cause POWER_LOSS

State on disk, next to the flash file FLASH: FLASH (the flash bytes), FLASH.otp (the fuse
words), FLASH.reset (the last reset cause), FLASH.boot (boots since power-up and the uptime).
A new SoftwareMachine on the same path is the same device, still powered: flash, fuses, last
reset cause and boot count as they were, its uptime going on from where the last run left it
(only a new device, or `record_power_on`, is a power-up). Without a path everything is in
memory.

With `keep_clock=True` the wall clock is kept too, in FLASH.clock (an ISO 8601 UTC time): a
machine resumes at the time saved there (`wall_start` is for a device without one) and `close()`
saves the time it reached, so the device's time moves on from one run to the next like a real
device's. `create=False` opens only a device that exists: a missing file, or an empty one, is a
StateFileError (FlashFileError, OtpFileError) like a file of the wrong size; nothing is created.
One device, one user: the machine holds an exclusive lock on FLASH (covering the other files)
while it is open; another process gets DeviceBusyError after waiting up to `lock_wait` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hal.interfaces import BootHook, Closeable, FlashGeometry, ResetCause
from hal.soft.clock import DEFAULT_WALL_START, ClockState, VirtualClock
from hal.soft.console import Echo, LineConsole
from hal.soft.files import BOOT, CLOCK, OTP, RESET, check_saveable, load_wall, save_wall, sidecar
from hal.soft.flash import NorFlash
from hal.soft.memory_map import MemoryMap
from hal.soft.otp import FuseBank
from hal.soft.power import PowerRail
from hal.soft.power_cuts import FaultInjector
from hal.soft.reset import BootRegister, ResetCauseRegister, SoftResetController
from hal.soft.watchdog import VirtualWatchdog, WatchdogState

#: The default flash: MT3620-like, 16 MiB NOR with 4 KiB sectors and 256-byte pages.
MT3620_GEOMETRY = FlashGeometry()

#: Where the devices sit on the model's memory map (the model's addresses, not the MT3620's).
FLASH_BASE = 0x1000_0000
OTP_BASE = 0x3000_0000
RESET_CAUSE_BASE = 0x4000_0000


@dataclass(frozen=True)
class Snapshot:
    """What `restore` puts back: flash, fuses, reset cause, boots, clock, watchdog, power,
    console."""

    flash: bytes
    otp: tuple[int, ...]
    cause: ResetCause
    boots: tuple[int, float]
    clock: ClockState
    watchdog: WatchdogState | None
    powered: bool
    console_lines: int
    token: object = field(default_factory=object, compare=False, repr=False)


class SoftwareMachine(Closeable):
    """An in-process device implementing :class:`hal.interfaces.Machine`, plus test controls.

    A fresh machine is powered, reports POWER_ON and has no boot hook. Its boot hook is not run
    at construction: the device model runs its first boot itself.
    """

    def __init__(
        self,
        flash_path: Path | str | None = None,
        geometry: FlashGeometry = MT3620_GEOMETRY,
        otp_words: int = 64,
        *,
        wall_start: float | datetime = DEFAULT_WALL_START,
        echo: Echo | None = None,
        create: bool = True,
        keep_clock: bool = False,
        lock_wait: float = 0.0,
        console_keep: int | None = None,
    ) -> None:
        path = None if flash_path is None else Path(flash_path)
        clock_file = sidecar(path, CLOCK) if keep_clock else None
        self._clock_file: Path | None = None  # set once the machine is built: close() saves
        self._rail = PowerRail()
        self._hook: BootHook | None = None
        self.faults = FaultInjector()
        self.console = LineConsole(echo, keep=console_keep)
        if clock_file is not None:
            load_wall(clock_file)  # a garbled clock file is refused before anything is made
        # the flash first: opening it takes the device's lock, which covers the other files
        self.flash = NorFlash(geometry, self._rail, self.faults, path, create=create,
                              lock_wait=lock_wait)
        try:
            saved = None if clock_file is None else load_wall(clock_file)
            if clock_file is not None:
                check_saveable(clock_file)  # not after an update, at close()
            self.clock = VirtualClock(wall_start if saved is None else saved)
            self.otp = FuseBank(otp_words, self._rail, sidecar(path, OTP), create=create)
            self._cause = ResetCauseRegister(sidecar(path, RESET), create=create)
            self._boots = BootRegister(self.clock.monotonic, sidecar(path, BOOT))
        except BaseException:
            self.close()
            raise
        self.reset = SoftResetController(self._rail, self._cause, self._reboot, self._boots)
        self.watchdog = VirtualWatchdog(
            self.clock, self._rail, lambda: self._reboot(ResetCause.WATCHDOG)
        )
        self._rail.when_cut(self.watchdog.halt)
        self.memory_map = self._build_memory_map()
        self._clock_file = clock_file
        self.console.log(f"[hal] power on: last reset cause {self._cause.cause.name}")

    @property
    def powered(self) -> bool:
        """False between a power cut (injected or `power_off`) and `power_on`."""
        return self._rail.on

    def set_boot_hook(self, hook: BootHook | None) -> None:
        """Run `hook(machine)` on every reset, watchdog bite and `power_on` (None: nothing)."""
        self._hook = hook

    def power_off(self) -> None:
        """Cut power between operations: flash, OTP, reset and watchdog raise PowerLoss."""
        self._rail.cut()

    def power_on(self) -> None:
        """Power up (from off, or power-cycle if on): RAM lost, cause POWER_LOSS, boot hook run.

        A PowerLoss out of the boot hook (a cut armed for a boot-time flash operation)
        propagates, and the machine is off again.
        """
        self._rail.restore()
        self._reboot(ResetCause.POWER_LOSS)

    def record_power_on(self) -> None:
        """Record a power-up in the reset-cause register (POWER_ON), without running the boot
        hook: what a board agent does when it starts serving the device, since starting it is
        a power-up, whatever cause the previous run ended with (docs/serial-protocol.md §9)."""
        self.watchdog.halt()
        self._cause.record(ResetCause.POWER_ON)
        self._boots.booted(power_up=True)

    def snapshot(self) -> Snapshot:
        """Capture the machine's state (one 16 MiB copy for the default flash)."""
        token = object()
        return Snapshot(
            flash=self.flash.image(token),
            otp=self.otp.words(),
            cause=self._cause.cause,
            boots=self._boots.state(),
            clock=self.clock.state(),
            watchdog=self.watchdog.state(),
            powered=self._rail.on,
            console_lines=self.console.total,
            token=token,
        )

    def restore(self, snap: Snapshot) -> None:
        """Put the machine back as `snap` found it; the boot hook and fault injector are kept.

        Restoring the most recent snapshot copies back only the flash sectors changed since.
        """
        self.flash.load_image(snap.flash, snap.token)
        self.otp.load(snap.otp)
        self._cause.record(snap.cause)
        self.clock.load(snap.clock)
        self._boots.load(snap.boots)
        self.watchdog.load(snap.watchdog)
        self.console.truncate(snap.console_lines)
        if snap.powered:
            self._rail.restore()
        else:
            self._rail.cut()

    def close(self) -> None:
        """Close the backing files (their contents stay); the machine must not be used after.

        The uptime reached is saved to FLASH.boot; with `keep_clock`, the wall time reached to
        FLASH.clock.
        """
        clock_file, self._clock_file = self._clock_file, None
        try:
            if clock_file is not None:
                save_wall(clock_file, self.clock.wall())
        finally:
            self.flash.close()
            if hasattr(self, "otp"):
                self.otp.close()
            if hasattr(self, "_cause"):
                self._cause.close()
            if hasattr(self, "_boots"):
                self._boots.close()

    def _reboot(self, cause: ResetCause) -> None:
        self.watchdog.halt()
        self._cause.record(cause)
        self._boots.booted()
        self.console.log(f"[hal] reset: cause {cause.name}")
        if self._hook is not None:
            self._hook(self)

    def _build_memory_map(self) -> MemoryMap:
        memory = MemoryMap()
        memory.add("flash", FLASH_BASE, self.flash.geometry.size, self.flash)
        memory.add("otp", OTP_BASE, self.otp.word_count * 4, self.otp)
        memory.add("reset_cause", RESET_CAUSE_BASE, 4, self._cause)
        return memory
