"""`fwmodel` as a program (the console script and `python -m firmware_model`)."""

from typing import NoReturn

from policy.entry import launch


def fwmodel() -> NoReturn:
    """Run `fwmodel`, interruptible from its first instant (`policy.entry`)."""
    launch("fwmodel", "firmware_model.cli.fwmodel")
