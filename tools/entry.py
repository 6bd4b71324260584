"""The tools as programs (the console scripts `imagetool` and `audit-endpoints`)."""

from typing import NoReturn

from policy.entry import launch


def imagetool() -> NoReturn:
    """Run `imagetool`, interruptible from its first instant (`policy.entry`)."""
    launch("imagetool", "tools.imagetool")


def audit_endpoints() -> NoReturn:
    """Run `audit-endpoints`, interruptible from its first instant (`policy.entry`)."""
    launch("audit_endpoints", "tools.audit_endpoints")
