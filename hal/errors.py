"""Typed errors raised by the hardware abstraction layer (each of a `policy.errors` kind:
hardware, unless it says otherwise)."""

from __future__ import annotations

from policy.errors import BadInput, Busy, HardwareFault


class HalError(HardwareFault):
    """Base of every error the HAL raises."""


class FlashError(HalError):
    """A flash operation broke a NOR rule or addressed memory that does not exist."""


class OtpError(HalError):
    """An OTP operation addressed a word that does not exist."""


class StateFileError(HalError, BadInput):
    """A file keeping a software machine's state is missing where it must exist already, or
    holds the wrong size or content (the message names the file)."""


class FlashFileError(StateFileError, FlashError):
    """The flash file is missing (and not to be created) or not the size of the flash."""


class OtpFileError(StateFileError, OtpError):
    """The fuse file is missing (and not to be created) or not the size of the fuse bank."""


class NoDeviceError(StateFileError):
    """There is no device at a flash path (only provisioning creates one)."""


class DeviceBusyError(HalError, Busy):
    """Another process holds the device (its flash file is locked, or a board's port is open)."""


class PowerLoss(HalError):
    """Power was cut (by the fault injector or a board that went away mid-operation).

    Whatever the interrupted operation had done to flash stays done; RAM is lost.
    """


class LinkError(HalError):
    """The serial link to a board failed: port closed, retries exhausted, protocol broken."""


class LinkTimeout(LinkError):
    """No valid reply arrived within the time the request was allowed."""


class RemoteError(HalError):
    """The board answered a request with an error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
