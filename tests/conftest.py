"""Fixtures shared across the test rooms. Keep this small; append, do not rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.oracle.msvenv import OracleUnavailable, ensure_ms_venv
from tools.pki import LabPki, keygen


@pytest.fixture(scope="session")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> LabPki:
    """One lab PKI (root, keystore-signing, image-signing; P-256) for the whole session."""
    return keygen(tmp_path_factory.mktemp("lab-pki"))


@pytest.fixture(scope="session")
def ms_python() -> Path:
    """The python of `.venv-ms`, holding Microsoft's azuresphere-imagemetadata (the oracle).

    Created on first use with the commands of `make oracle`; a failure fails the test, it
    does not skip it: the oracle is part of what the suite proves.
    """
    try:
        return ensure_ms_venv()
    except OracleUnavailable as error:
        pytest.fail(f"Microsoft oracle venv (.venv-ms) unavailable: {error}", pytrace=False)
