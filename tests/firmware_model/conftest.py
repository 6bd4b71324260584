"""The device model's tests: its lab (images, keys), the oracle, a provisioned device."""

from tests.fixtures import device, device_lab, lab_pki, ms_python

__all__ = ["device", "device_lab", "lab_pki", "ms_python"]
