"""The typed errors callers branch on. Library code raises these; only the command lines print.

Each error is of one kind of `policy.errors` (inherited beside `FwModelError`), and the kind
alone decides the exit code (`policy.cli`). `FwModelError` itself is only the common base.
"""

from __future__ import annotations

import errno as errno_codes

from hal.errors import LinkError
from policy.errors import BadInput, HardwareFault, Refused, Unavailable

__all__ = [
    "AppManifestError",
    "BootError",
    "CertStoreError",
    "CertStoreInputError",
    "CertStoreRefusedError",
    "FeedError",
    "FeedLocationError",
    "FwModelError",
    "ImageFormatError",
    "LayoutError",
    "LinkError",
    "ManifestMismatchError",
    "NotProvisionedError",
    "ProvisioningError",
    "ReadbackError",
    "ReplayError",
    "RestartRequiredError",
    "RevokedError",
    "RollbackError",
    "SignatureError",
    "SizeLimitError",
    "TlsError",
    "TrustError",
    "UnfitImageError",
    "UnsafeUpdateError",
    "UntrustedSignerError",
    "WrongImageTypeError",
    "certstore_error",
]


class FwModelError(Exception):
    """Base of every error the device model raises (never raised itself)."""


class ImageFormatError(FwModelError, BadInput):
    """Bytes that are not a well-formed image package or payload.

    `offset` is where in the input the problem sits (None where no single offset applies).
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        where = f" at offset {offset:#x}" if offset is not None else ""
        super().__init__(f"{message}{where}")
        self.offset = offset


class SizeLimitError(ImageFormatError):
    """An image or manifest larger than the device accepts."""


class LayoutError(FwModelError, BadInput):
    """The device's flash or fuse bank cannot hold what the model keeps there, or a value does
    not fit its place (a security version past the counter)."""


class TrustError(FwModelError, Refused):
    """Well-formed input that the device must not trust."""


class SignatureError(TrustError):
    """The signature does not verify with the key it names."""


class UntrustedSignerError(TrustError):
    """The signing key is unknown, or not allowed to sign this image type."""


class RevokedError(TrustError):
    """The signing key or the image's security version has been revoked."""


class RollbackError(TrustError):
    """The image's security version is below the one the device has confirmed."""


class WrongImageTypeError(TrustError):
    """A valid image of a type other than the one expected here."""


class ManifestMismatchError(TrustError):
    """An image that the manifest does not list, or that differs from its entry."""


class ReplayError(TrustError):
    """An update manifest older than the newest one the device installed (a replay)."""


class UnfitImageError(TrustError):
    """An authentic image the device cannot run: a security version its counter cannot hold."""


class UnsafeUpdateError(TrustError):
    """An authentic update that would strand the device: a store with no root valid at the
    device's clock (no HTTPS, no feed), a keystore that trusts no key to sign the next
    update's manifest."""


class RestartRequiredError(FwModelError, Refused):
    """An installed update waits for the device's restart: nothing more may be staged or
    installed until it has booted (the device REST API's "A reboot is required")."""


class BootError(TrustError):
    """Neither the slots the boot record names nor their fallback authenticate."""


class TlsError(TrustError):
    """A TLS connection made from the device failed (handshake, chain at the device's clock)."""


class FeedError(FwModelError, Unavailable):
    """The update feed could not be reached or served incomplete data."""


class FeedLocationError(FwModelError, BadInput):
    """A feed location that names no feed: a missing folder or channel folder, a scheme other
    than http/https/file, a host off the loopback interface (bad usage, not a feed that is
    down)."""


class AppManifestError(FwModelError, BadInput):
    """An app manifest (app_manifest.json) that cannot be read as one: not JSON, not an object,
    no Name, a SysEvent capability that is not true or false."""


class NotProvisionedError(FwModelError, BadInput):
    """The device has no fused root-key hash or no valid boot record: provision it first."""


class ProvisioningError(FwModelError, BadInput):
    """Provisioning refused: the device is provisioned already, or with another root."""


class ReadbackError(FwModelError, HardwareFault):
    """What reads back from flash is not what was written (a hardware fault)."""


class CertStoreError(FwModelError):
    """A refusal of the app certificate store (Applibs CertStore), as the C API reports it:
    `errno` (28) and `errno_name` ("ENOSPC"), plus `reason`, a finer name for what was refused
    ("identifier-characters", "no-space", ...: `device.app_certstore.Refusal`) that tells apart
    refusals sharing an errno (the device REST API gives each its own error code).

    Made by `certstore_error`, which picks the kind from the errno: EINVAL and ERANGE (an
    identifier or a blob that cannot be used) are bad input, ENOENT and ENOSPC (a well-formed
    request the store cannot carry out) are refusals.
    """

    def __init__(self, code: int, reason: str, message: str) -> None:
        self.errno = code
        self.errno_name = errno_codes.errorcode.get(code, f"errno {code}")
        self.reason = reason
        super().__init__(f"certstore: {self.errno_name}: {message}")


class CertStoreInputError(CertStoreError, BadInput):
    """EINVAL or ERANGE: an identifier, certificate, key or password the store cannot take."""


class CertStoreRefusedError(CertStoreError, Refused):
    """ENOENT or ENOSPC: no certificate under that identifier, or not enough space."""


def certstore_error(code: int, reason: str, message: str) -> CertStoreError:
    """The CertStoreError for errno `code`, of the kind that errno is (see CertStoreError)."""
    if code in (errno_codes.EINVAL, errno_codes.ERANGE):
        return CertStoreInputError(code, reason, message)
    return CertStoreRefusedError(code, reason, message)
