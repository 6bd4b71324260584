"""`fwmodel serve-api` as a process of its own, for what drives it with Microsoft's client (the
tests, bench/api.py): started on a device's flash files, found by its first line, stopped by a
signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hal.soft.files import device_files
from tests.oracle.apivenv import Server

START_TIMEOUT = 60.0
TIMEOUT = 60


def fwmodel(*args: str, hal: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firmware_model", "--hal", hal, *args],
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def files_of(flash: Path) -> dict[str, bytes]:
    """Every file of a software device, by name (the flash, fuses, reset cause, boots, clock)."""
    return {path.name: path.read_bytes() for path in device_files(flash) if path.exists()}


@dataclass
class Served:
    """A running `fwmodel serve-api`: its process, where it serves, its output files."""

    process: subprocess.Popen[bytes]
    server: Server
    out: Path
    err: Path

    @classmethod
    def start(cls, hal: str, folder: Path, *args: str) -> Served:
        """Start serving the device `hal` names; returns once the first line is out (fails
        with the server's stderr if it exits first)."""
        out, err = folder / "serve.out", folder / "serve.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "firmware_model", "--hal", hal, "serve-api", *args],
                stdout=stdout, stderr=stderr)
        deadline = time.monotonic() + START_TIMEOUT
        while not out.read_text().endswith("\n"):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise AssertionError(f"serve-api did not start ({process.returncode}): "
                                     f"{err.read_text()[-2000:]}")
            time.sleep(0.02)
        first = out.read_text().splitlines()[0]
        return cls(process, Server.from_first_line(first), out, err)

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Stop it with `signum`: its exit code, stdout and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            code = self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return code, self.out.read_text(), self.err.read_text()
