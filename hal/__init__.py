"""Hardware abstraction layer: interfaces, the software machine, the serial board link.

`hal` knows nothing of images or certificates. The device model (`firmware_model`) reaches
hardware only through the interfaces in :mod:`hal.interfaces`.
"""
