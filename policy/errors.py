"""The kinds of failure. Every error the project raises is one of these (by inheritance, next to
its own class: `ImageFormatError(FwModelError, BadInput)`), and the kind alone decides its exit
code (`policy.cli.exit_code`): error classes say what happened, never which number to exit with.
"""

from __future__ import annotations


class Failure(Exception):
    """Base of every kind: something the user should hear about in one line."""


class BadInput(Failure):
    """Input that cannot be used: malformed bytes, an unreadable or unusable file, bad usage,
    a device that is not (or already) provisioned."""


class UsageError(BadInput):
    """A request that cannot be carried out as asked: arguments that parse but make no sense."""


class Refused(Failure):
    """Well-formed input that must not be trusted or accepted: a bad signature, an untrusted or
    revoked signer, a rollback, a mismatched image, a device that does not boot, a TLS chain
    that fails."""


class Unavailable(Failure):
    """Something to fetch from is down or served incomplete data: trying again later may work."""


class HardwareFault(Failure):
    """The hardware failed: the link to a board, a flash that does not read back."""


class Busy(Failure):
    """The device is in use by another process; nothing was done."""


#: The kinds in the order they are tested: an error of two kinds is reported as the first.
KINDS: tuple[type[Failure], ...] = (Busy, BadInput, Refused, Unavailable, HardwareFault)
