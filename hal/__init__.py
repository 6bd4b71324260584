"""Hardware abstraction layer: the interfaces the device model is written against
(`interfaces`), the software machine (`soft`), the serial board protocol's host side (`serial`),
the board agents served over it (`emulator`), the `--hal` backends and the pytest plugin.

`hal` knows nothing of images or certificates; the device model (`firmware_model`) reaches
hardware only through `hal.interfaces`.
"""
