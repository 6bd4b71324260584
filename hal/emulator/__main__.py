"""`python -m hal.emulator`: serve a software machine as a board (see hal.emulator.cli)."""

from policy.entry import launch

launch("hal.emulator", "hal.emulator.cli")
