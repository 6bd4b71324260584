"""The typed errors callers branch on. Library code raises these; only the CLIs print."""

from __future__ import annotations

from hal.errors import LinkError

__all__ = [
    "BootError",
    "FeedError",
    "FwModelError",
    "ImageFormatError",
    "LinkError",
    "ManifestMismatchError",
    "NotProvisionedError",
    "ProvisioningError",
    "ReadbackError",
    "RevokedError",
    "RollbackError",
    "SignatureError",
    "SizeLimitError",
    "TlsError",
    "TrustError",
    "UntrustedSignerError",
    "WrongImageTypeError",
]

EXIT_OK = 0
EXIT_TRUST = 1
EXIT_FORMAT = 2
EXIT_FEED = 3
EXIT_HAL = 4


class FwModelError(Exception):
    """Base of every error the device model raises."""

    exit_code = EXIT_FORMAT


class ImageFormatError(FwModelError):
    """Bytes that are not a well-formed image package or payload.

    `offset` is where in the input the problem sits (None where no single offset applies).
    """

    exit_code = EXIT_FORMAT

    def __init__(self, message: str, offset: int | None = None) -> None:
        where = f" at offset {offset:#x}" if offset is not None else ""
        super().__init__(f"{message}{where}")
        self.offset = offset


class SizeLimitError(ImageFormatError):
    """An image or manifest larger than the device accepts."""


class TrustError(FwModelError):
    """Well-formed input that the device must not trust."""

    exit_code = EXIT_TRUST


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


class BootError(TrustError):
    """Neither the slots the boot record names nor their fallback authenticate."""


class TlsError(TrustError):
    """A TLS connection made from the device failed (handshake, chain at the device's clock)."""


class FeedError(FwModelError):
    """The update feed could not be reached or served incomplete data."""

    exit_code = EXIT_FEED


class NotProvisionedError(FwModelError):
    """The device has no fused root-key hash or no valid boot record: provision it first."""

    exit_code = EXIT_FORMAT


class ProvisioningError(FwModelError):
    """Provisioning refused: the device is provisioned already, or with another root."""

    exit_code = EXIT_FORMAT


class ReadbackError(FwModelError):
    """What reads back from flash is not what was written (a hardware fault)."""

    exit_code = EXIT_HAL
