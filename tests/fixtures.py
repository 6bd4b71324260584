"""Fixtures more than one room's tests use; each room's conftest imports the ones it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_model.device.model import Device
from firmware_model.errors import ProvisioningError
from firmware_model.trust.fuses import read_root_hash
from hal.interfaces import Machine
from tests.firmware_model.devicelab import Lab as DeviceLab
from tests.oracle.msvenv import OracleUnavailable, ensure_ms_venv
from tools.pki import LabPki, keygen


@pytest.fixture(scope="session")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> LabPki:
    """One lab PKI (root, keystore-signing, image-signing; P-256) for the whole session."""
    return keygen(tmp_path_factory.mktemp("lab-pki"))


@pytest.fixture(scope="session")
def ms_python() -> Path:
    """The python of `.venv-ms`, holding Microsoft's azuresphere-imagemetadata (the oracle).

    Made by `make oracle` (which `make test` runs first); missing, it fails the test, it does
    not skip it: the oracle is part of what the suite proves.
    """
    try:
        return ensure_ms_venv()
    except OracleUnavailable as error:
        pytest.fail(f"Microsoft oracle venv (.venv-ms) unavailable: {error}", pytrace=False)


@pytest.fixture(scope="session")
def device_lab(tmp_path_factory: pytest.TempPathFactory) -> DeviceLab:
    """The shipped images built once (tools/build_images.py) with their own lab keys."""
    return DeviceLab.build(tmp_path_factory.mktemp("device-images"))


@pytest.fixture
def device(machine: Machine, device_lab: DeviceLab) -> Device:
    """A provisioned, booted device model (pre-2025 store) on the `--hal` machine.

    A board that is provisioned already is booted as it is, if it trusts this lab's root.
    """
    model = Device(machine)
    try:
        model.provision(device_lab.factory)
    except ProvisioningError:
        if read_root_hash(machine.otp) != device_lab.factory.root_hash:
            pytest.skip("the board is provisioned with another root key than this lab's")
        model.boot()
    return model
