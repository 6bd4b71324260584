"""What the rehearsals (tools/demo.py, tools/demo_july.py) share: a step's heading, a device
command printed and run in this process, the device's status read without printing it."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from firmware_model.cli import fwmodel


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def shown(path: Path | str) -> str:
    """`path` as the command line shows it: relative to the working directory where it can be."""
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(Path.cwd()))
    return str(path)


def command(name: str, main: Callable[[Sequence[str]], int], args: Sequence[str]) -> int:
    """Print `$ NAME ARGS` and run `main(ARGS)` in this process; its exit code (shown if not 0)."""
    print(f"$ {name} {shlex.join(args)}", flush=True)
    code = main(list(args))
    sys.stdout.flush()
    if code:
        print(f"(exit {code})", flush=True)
    return code


def device(flash: Path, *argv: str) -> int:
    """Run one `fwmodel` command on the rehearsal's device, printing it first."""
    return command("fwmodel", fwmodel.main, ["--hal", f"fake:{shown(flash)}", *argv])


def status_of(flash: Path) -> dict[str, object]:
    """`fwmodel status --json` of the rehearsal's device, read without printing it."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        fwmodel.main(["--hal", f"fake:{flash}", "status", "--json"])
    value = json.loads(captured.getvalue())
    return value if isinstance(value, dict) else {}


def running(status: dict[str, object], component: str) -> str:
    """The name of the image the device runs for `component` ("none" if it did not boot)."""
    slots = status.get("slots")
    return str(slots[component]["image"]["name"]) if isinstance(slots, dict) else "none"


def boots(status: dict[str, object]) -> int:
    count = status.get("boot_count")
    return count if isinstance(count, int) else 0


def reboot_problems(before: dict[str, object], after: dict[str, object], component: str,
                    expected: str) -> list[str]:
    """What an update of `component` to the image named `expected` should have done (the
    image running, the OS version kept, one reboot) and did not."""
    problems = []
    if running(after, component) != expected:
        problems.append(f"the device runs {component} {running(after, component)}, not "
                        f"{expected}")
    if after.get("os_version") != before.get("os_version"):
        problems.append("the OS version changed")
    if boots(after) != boots(before) + 1:
        problems.append(f"boot count {boots(before)} -> {boots(after)}: the {component} "
                        "update should have rebooted the device once")
    return problems
