"""The device REST API's error answers: an HTTP status and a body `{"error": N}`, N one of the
device error codes Microsoft's client knows (`azuresphere-device-api` 1.1.1,
`error_handler.ERROR_MESSAGE_MAP_DICT`: a code it does not know makes it raise "Unknown device
error" whatever the status), and how the model's typed errors map onto them.

Microsoft documents neither which code a device gives for what nor with which status (one pair
is evidenced: 409 with 14680076, "Application is not present"); the model's choices, by the kind
of the refusal, are in docs/device-api.md ("Errors").
"""

from __future__ import annotations

from http import HTTPStatus

from firmware_model.errors import (
    CertStoreError,
    ImageFormatError,
    ManifestMismatchError,
    RestartRequiredError,
    SizeLimitError,
    TrustError,
    WrongImageTypeError,
)
from policy.errors import BadInput

# -- the codes (decimal, as the client's table has them) -----------------------------------------
IMAGE_NOT_TRUSTED = 7340047  # "Image not trusted by device; check if application development..."
IMAGE_NOT_STAGED = 7340050  # "Image could not be staged; check that it is a valid image package"
INVALID_COMPONENT_ID = 7340079  # "Image has an invalid component ID. Re-package your image ..."
REBOOT_REQUIRED = 3145735  # "A reboot is required"
INVALID_URI = 15728642  # "Invalid request URI."
CONTENT_TOO_LARGE = 15728644  # "The content provided is too large."
CERT_ID_INVALID = 38797314  # "The supplied certificate identifier is invalid. ..."
CERT_CONTENT_INVALID = 38797315  # "Certificate contents are invalid. ..."
CERT_ID_TOO_LONG = 38797316  # "Certificate identifier too long. ... 1-16 characters ..."
CERT_NOT_FOUND = 38797319  # "No certificate with that identifier could be found on the device."
CERT_NO_SPACE = 38797323  # "Unable to add certificate. Certificate store is out of space."
CERT_TYPE_INVALID = 38797324  # "Certificate type is invalid. ... 'client' or 'rootca'."
PUBLIC_CERT_TOO_LONG = 38797326  # "Public Certificate content is too long."
PRIVATE_KEY_INVALID = 38797327  # "Private Key content is invalid."
PRIVATE_KEY_TOO_LONG = 38797328  # "Private Key content is too long."
PRIVATE_KEY_NOT_ALLOWED = 38797329  # "Private Key is not allowed for this certificate type."
PASSWORD_TOO_LONG = 38797330  # "Private Key password is too long."
PASSWORD_NOT_ALLOWED = 38797331  # "Private Key password is not allowed for this certificate type."
KEY_PAIR_MISMATCH = 38797332  # "Certificate and Private Key pair do not match."
PASSWORD_FOR_PLAIN_KEY = 38797333  # "Private Key password provided for unencrypted key."

#: The app certificate store's refusals (`device.app_certstore.Refusal` values) by code.
CERTSTORE_CODES: dict[str, int] = {
    "identifier-length": CERT_ID_TOO_LONG,
    "identifier-characters": CERT_ID_INVALID,
    "certificate-length": PUBLIC_CERT_TOO_LONG,
    "certificate-invalid": CERT_CONTENT_INVALID,
    "key-length": PRIVATE_KEY_TOO_LONG,
    "key-invalid": PRIVATE_KEY_INVALID,
    "key-password": PRIVATE_KEY_INVALID,
    "password-not-allowed": PASSWORD_FOR_PLAIN_KEY,
    "password-length": PASSWORD_TOO_LONG,
    "key-mismatch": KEY_PAIR_MISMATCH,
    "not-found": CERT_NOT_FOUND,
    "no-space": CERT_NO_SPACE,
}


class ApiError(Exception):
    """A refusal as the API answers it: `status` and `{"error": code}` (no body when `code`
    is None); `reason` is for the server's log only. Raised by the routes and answered by
    `routes.dispatch`: it never leaves the package."""

    def __init__(self, status: HTTPStatus, code: int | None, reason: str = "") -> None:
        self.status, self.code, self.reason = status, code, reason
        super().__init__(f"{int(status)} {code}: {reason}")

    def body(self) -> dict[str, object] | None:
        return None if self.code is None else {"error": self.code}


def bad_request(code: int, reason: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, code, reason)


def unknown_route(method: str, path: str) -> ApiError:
    """What a device answers for a route it does not have (docs/device-api.md)."""
    return ApiError(HTTPStatus.NOT_FOUND, INVALID_URI, f"no route {method} {path}")


def certstore_refusal(error: CertStoreError) -> ApiError:
    """A CertStoreError as the API answers it: EINVAL and ERANGE 400, ENOENT and ENOSPC 409,
    each with the code of its reason."""
    status = HTTPStatus.BAD_REQUEST if isinstance(error, BadInput) else HTTPStatus.CONFLICT
    return ApiError(status, CERTSTORE_CODES.get(error.reason, CERT_CONTENT_INVALID), str(error))


def stage_refusal(error: Exception) -> ApiError | None:
    """A refusal of `update/stage` or `update/install` as the API answers it (None: not a
    refusal of the image, e.g. a hardware fault)."""
    reason = f"{type(error).__name__}: {error}"
    if isinstance(error, RestartRequiredError):
        return ApiError(HTTPStatus.CONFLICT, REBOOT_REQUIRED, reason)
    if isinstance(error, SizeLimitError):
        return bad_request(CONTENT_TOO_LARGE, reason)
    if isinstance(error, ImageFormatError | WrongImageTypeError):
        return bad_request(IMAGE_NOT_STAGED, reason)
    if isinstance(error, ManifestMismatchError):
        return bad_request(INVALID_COMPONENT_ID, reason)
    if isinstance(error, TrustError):
        return ApiError(HTTPStatus.FORBIDDEN, IMAGE_NOT_TRUSTED, reason)
    return None
