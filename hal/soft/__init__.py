"""The software machine, QEMU-style: NOR flash, fuses, reset, clock, watchdog, console and
the power-cut injector, on a memory map, optionally backed by device files."""
