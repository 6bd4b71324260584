"""End-to-end tests: the shipped images and a provisioned device."""

from tests.fixtures import device, device_lab

__all__ = ["device", "device_lab"]
