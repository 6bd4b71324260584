"""`imagetool.main` called in this process, as the imagetool tests run it."""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

from tools import imagetool


def call(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`imagetool.main` in this process (same code path, without the interpreter start-up;
    the subprocess path is shown in tests/e2e and test_imagetool's `run`).

    Used for the long lists of cases; anything but a clean exit (an uncaught exception)
    fails the test here just as a traceback would in a subprocess.
    """
    argv = list(map(str, args))
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = imagetool.main(argv)
        except SystemExit as leave:  # argparse usage errors
            code = int(leave.code or 0)
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())
