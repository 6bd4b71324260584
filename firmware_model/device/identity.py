"""The device's identity key, as the device REST API reports it (`device/security_state`).

An Azure Sphere device is known by its identity key: its device ID is the public key, 128 hex
digits (the P-256 point's x and y, 32 bytes each), and Microsoft's REST API reference shows
`deviceIdentifier` and `deviceIdentityPublicKey` as that same string (Azure/azure-sphere-samples,
`Manufacturing/src/README.md`, "Get device security state"). A real device's key is made in
its silicon; the model has none, so it derives one from what its fuses hold: the private
scalar is SHA-256 of a label and the fused root-key hash. So a device keeps its ID across runs
and boots, and two devices provisioned with the same lab root share one (docs/device-api.md).
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec

from firmware_model.errors import NotProvisionedError
from firmware_model.trust.fuses import read_root_hash
from hal.interfaces import Otp

_LABEL = b"sphere-fwmodel device identity key\x00"
_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's n


def identity_key(otp: Otp) -> ec.EllipticCurvePublicKey:
    """The device's identity public key (see module doc); NotProvisionedError before the
    root-key hash is fused."""
    fused = read_root_hash(otp)
    if fused is None:
        raise NotProvisionedError("the device has no fused root-key hash, hence no identity")
    scalar = int.from_bytes(hashlib.sha256(_LABEL + fused).digest(), "big") % (_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1()).public_key()


def device_id(otp: Otp) -> str:
    """The device ID: the identity public key's x and y, 128 lowercase hex digits."""
    numbers = identity_key(otp).public_numbers()
    return (numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")).hex()
