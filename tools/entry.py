"""The tools as programs (the console scripts `imagetool`, `audit-endpoints`, `lab-server`)."""

from typing import NoReturn

from policy.entry import launch


def imagetool() -> NoReturn:
    """Run `imagetool`, interruptible from its first instant (`policy.entry`)."""
    launch("imagetool", "tools.imagetool")


def audit_endpoints() -> NoReturn:
    """Run `audit-endpoints`, interruptible from its first instant (`policy.entry`)."""
    launch("audit-endpoints", "tools.audit_endpoints")


def lab_server() -> NoReturn:
    """Run `lab-server`, interruptible from its first instant (`policy.entry`)."""
    launch("lab-server", "tools.lab_server")
