"""What a user watching a terminal sees while long work goes on: tqdm bars on stderr for the
sweep and for flash transfers to a board (none when stderr is not a terminal), and `-v`
streaming the device's console lines as they are logged, not at the end."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
import warnings
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from firmware_model.device.provision import KEYSTORE_FILE, ROOT_HASH_FILE
from tests.e2e.test_fwmodel_cli import TIMEOUT, fwmodel
from tests.firmware_model.devicelab import Lab
from tests.firmware_model.tlslab import FeedFaults, feed_server


def on_a_terminal(*args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run `python -m firmware_model ARGS` with stderr on a pseudo-terminal; the result and
    everything the terminal showed."""
    main, terminal = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "firmware_model", *args],
                                stdout=subprocess.PIPE, stderr=terminal, text=True,
                                timeout=TIMEOUT, check=False)
        os.close(terminal)
        terminal = -1
        shown = b""
        while chunk := _read(main):
            shown += chunk
    finally:
        if terminal >= 0:
            os.close(terminal)
        os.close(main)
    return result, shown.decode(errors="replace")


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO once the terminal's other end is closed and drained
        return b""


def test_the_sweep_shows_a_progress_bar_on_a_terminal(device_lab: Lab) -> None:
    result, shown = on_a_terminal("sweep", "--images", str(device_lab.folder),
                                  "--modes", "before")
    assert result.returncode == 0 and "violations: 0" in result.stdout
    cuts = result.stdout.split()[0]  # "28 flash operations x 1 mode ..."
    assert "sweep:" in shown and f"{cuts}/{cuts}" in shown
    assert "100%" in shown


def test_no_bar_when_stderr_is_not_a_terminal(device_lab: Lab) -> None:
    done = fwmodel("sweep", "--images", str(device_lab.folder), "--modes", "before")
    assert done.returncode == 0 and done.stderr == ""


def big_store(lab: Lab, folder: Path) -> Path:
    """A store of every root of the pinned Mozilla set (some 200 KB): long enough a transfer
    over a serial link for a bar."""
    with warnings.catch_warnings():  # 8 roots of the set have a serial number of 0
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        certificates = x509.load_pem_x509_certificates(Path(certifi.where()).read_bytes())
    roots = [(f"root{index}", cert) for index, cert in enumerate(certificates)]
    path = folder / "big-store.imagepackage"
    path.write_bytes(lab.store(roots, 1))
    return path


def test_provisioning_a_board_shows_the_flash_being_written(device_lab: Lab,
                                                             tmp_path: Path) -> None:
    store = big_store(device_lab, tmp_path)
    args = ["--hal", f"emulator:{tmp_path / 'dev.flash'}", "provision",
            "--root-hash", (device_lab.folder / ROOT_HASH_FILE).read_text().strip(),
            "--keystore", str(device_lab.folder / KEYSTORE_FILE), "--store", str(store)]
    result, shown = on_a_terminal(*args)
    assert result.returncode == 0, shown
    # a bar for each long transfer (the store, some 164 KiB), cleared when it ends
    assert "erasing flash:" in shown and "writing flash:" in shown and "164k" in shown
    assert "provisioned:" in result.stdout


def test_verbose_streams_the_console_as_the_device_logs_it(device_lab: Lab,
                                                            tmp_path: Path) -> None:
    """The boot's lines reach stderr while the command still waits for a slow feed."""
    hal = f"fake:{tmp_path / 'dev.flash'}"
    assert fwmodel("provision", "--images", str(device_lab.folder), hal=hal).returncode == 0
    faults = FeedFaults(delay=1.5)
    with feed_server(device_lab.folder / "feeds", faults=faults) as url:
        run = subprocess.Popen(
            [sys.executable, "-m", "firmware_model", "--hal", hal, "-v", "update", "--feed",
             url + "Retail"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert run.stderr is not None
        first = _line_within(run.stderr, TIMEOUT)
        still_running = run.poll() is None
        served = list(faults.served)
        _, rest = run.communicate(timeout=TIMEOUT)
    assert first.startswith("[hal] power on") and still_running and served == [], first
    assert "[boot] cause" in rest and "[agent]" in rest and run.returncode == 0, rest


def _line_within(stream: object, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    fd = stream.fileno()  # type: ignore[attr-defined]
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            return str(stream.readline())  # type: ignore[attr-defined]
    raise AssertionError("no console line within the time allowed")
