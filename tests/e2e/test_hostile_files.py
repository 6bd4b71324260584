"""Paths that are not what they seem, met by real subprocesses: a FIFO nobody writes, a device
(`/dev/zero`), a folder, an immovable state file, a feed whose headers trickle. Each is one line
and a documented exit code, in time, with the device files as they were."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from policy.cli import ExitCode
from tests.e2e.test_hardening import files_of, fwmodel, provisioned
from tests.firmware_model.devicelab import Lab

NEW_STORE_FILE = "certstore-2025-02.imagepackage"


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def imagetool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.imagetool", *args], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("side", [".boot", ".clock", ".reset"])
def test_a_device_state_file_linked_to_dev_zero_is_refused_not_read_whole(
    device_lab: Lab, tmp_path: Path, side: str
) -> None:
    hal, flash = provisioned(device_lab, tmp_path)
    state = flash.with_name(flash.name + side)
    state.unlink()
    state.symlink_to("/dev/zero")
    done = fwmodel("status", hal=hal)
    assert done.returncode == ExitCode.BAD_INPUT
    assert one_line(done).endswith(f"{state}: not a regular file")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_a_flash_file_that_is_no_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    flash = {"fifo": tmp_path / "dev.flash", "dev-zero": Path("/dev/zero"),
             "folder": tmp_path / "dev.flash"}[kind]
    if kind == "fifo":
        os.mkfifo(flash)
    elif kind == "folder":
        flash.mkdir()
    for command in (("status",), ("provision", "--images", str(tmp_path))):
        done = fwmodel(*command, hal=f"fake:{flash}")
        assert done.returncode == ExitCode.BAD_INPUT, done.stderr
        assert "not a regular file" in one_line(done)


def test_a_hal_path_that_names_a_folder_is_a_usage_error() -> None:
    for target in ("/", ".", "..", "some/folder/"):
        done = fwmodel("status", hal=f"fake:{target}")
        assert done.returncode == ExitCode.BAD_INPUT
        assert "names a folder, not a flash file" in one_line(done)


def test_a_feed_file_that_is_a_fifo_ends_the_check_not_the_user_s_patience(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal, flash = provisioned(device_lab, tmp_path / "dev")
    before = files_of(flash)
    channel = tmp_path / "feed" / "Retail"
    channel.mkdir(parents=True)
    os.mkfifo(channel / "manifest.imagepackage")
    started = time.monotonic()
    done = fwmodel("update", "--feed", str(channel), "--deadline", "30", hal=hal)
    assert done.returncode == ExitCode.UNAVAILABLE
    assert "cannot read manifest.imagepackage (not a regular file)" in one_line(done)
    assert time.monotonic() - started < 20  # refused, not waited on until the deadline
    assert files_of(flash) == before


@contextmanager
def status_line_trickler(gap: float) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that sends its status line one byte every `gap` seconds:
    every single read is quick, the response never is."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client:
                client.recv(4096)
                for byte in b"HTTP/1.1 200 OK\r\n" * 20:
                    if stop.wait(gap):
                        return
                    try:
                        client.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/Retail"
    finally:
        stop.set()
        server.close()
        thread.join(5)


def test_a_feed_that_trickles_its_status_line_ends_the_check_at_its_deadline(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal, flash = provisioned(device_lab, tmp_path / "dev")
    before = files_of(flash)
    with status_line_trickler(gap=0.2) as url:
        started = time.monotonic()
        done = fwmodel("update", "--feed", url, "--deadline", "1.5", hal=hal)
        took = time.monotonic() - started
    assert done.returncode == ExitCode.UNAVAILABLE
    assert "deadline passed while fetching manifest.imagepackage" in one_line(done)
    assert took < 10  # the deadline plus start-up, not the 70 s the server would take
    assert files_of(flash) == before


def test_a_clock_file_that_cannot_be_replaced_is_refused_before_the_update_not_after(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal, flash = provisioned(device_lab, tmp_path / "dev")
    clock = flash.with_name(flash.name + ".clock")
    if subprocess.run(["chattr", "+i", str(clock)], capture_output=True, check=False).returncode:
        pytest.skip("chattr +i is not available here (needs root and a file system with it)")
    try:
        before = files_of(flash)
        done = fwmodel("update", "--feed", str(device_lab.folder / "feeds"), hal=hal)
        after = files_of(flash)
    finally:
        subprocess.run(["chattr", "-i", str(clock)], check=True)
    assert done.returncode == ExitCode.BAD_INPUT
    assert one_line(done).endswith(f"{clock}: Operation not permitted")
    assert after == before


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_imagetool_refuses_an_input_that_is_no_file(
    device_lab: Lab, tmp_path: Path, kind: str
) -> None:
    source = Path(kind)
    if kind == "fifo":
        source = tmp_path / "fifo"
        os.mkfifo(source)
    keys = device_lab.folder / "keys"
    for args in (("show", str(source)), ("build", str(source), "--keys", str(keys), "-o",
                                          str(tmp_path / "out.imagepackage"))):
        done = imagetool(*args)
        assert done.returncode == ExitCode.BAD_INPUT
        assert one_line(done).endswith(f"{source}: not a regular file")


def test_imagetool_never_replaces_an_output_that_is_no_regular_file(
    device_lab: Lab, tmp_path: Path
) -> None:
    fifo, folder = tmp_path / "fifo", tmp_path / "folder"
    os.mkfifo(fifo)
    folder.mkdir()
    keys = device_lab.folder / "keys"
    for output in (fifo, folder, Path(".")):
        done = imagetool("sign", str(device_lab.folder / NEW_STORE_FILE),
                         "--key", str(keys / "image-signing.key"),
                         "--cert", str(keys / "image-signing.pem"), "-o", str(output))
        assert done.returncode == ExitCode.BAD_INPUT
        assert "not a regular file (left as it is)" in one_line(done) or \
            "names a folder, not a file" in done.stderr
    assert fifo.is_fifo() and folder.is_dir() and not any(folder.iterdir())


def test_an_app_manifest_or_feed_ca_that_is_a_fifo_is_refused_at_once(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal, _ = provisioned(device_lab, tmp_path / "dev")
    fifo = tmp_path / "x.fifo"
    os.mkfifo(fifo)
    feeds = str(device_lab.folder / "feeds")
    for args in (("--feed", feeds, "--app", f"{fifo}:defer=1"),
                 ("--feed", "https://127.0.0.1:1/", "--feed-ca", str(fifo))):
        done = fwmodel("update", *args, hal=hal)
        assert done.returncode == ExitCode.BAD_INPUT
        assert one_line(done).endswith(f"{fifo}: not a regular file" + (
            " (see --help)" if "--app" in args else ""))


@pytest.mark.parametrize("kind", ["emulator", "native"])
def test_an_agent_never_fills_an_empty_flash_file_outside_provision(
    tmp_path: Path, kind: str
) -> None:
    flash = tmp_path / "e.flash"
    flash.touch()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    flash.with_name("e.flash.stderr").symlink_to(victim)  # an agent's stderr never goes here
    done = fwmodel("status", hal=f"{kind}:{flash}")
    assert done.returncode == ExitCode.BAD_INPUT
    assert "an empty flash file holds no device" in one_line(done)
    assert flash.stat().st_size == 0 and victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.flash", "e.flash.stderr",
                                                          "victim.txt"]


def test_an_agent_that_refuses_its_flash_leaves_no_file_beside_it(tmp_path: Path) -> None:
    fifo = tmp_path / "f.flash"
    os.mkfifo(fifo)
    done = fwmodel("status", hal=f"emulator:{fifo}")
    assert done.returncode == ExitCode.BAD_INPUT
    assert "not a regular file" in one_line(done)
    assert [p.name for p in tmp_path.iterdir()] == ["f.flash"]


def test_a_server_name_no_certificate_can_carry_is_a_usage_error(tmp_path: Path) -> None:
    for name in ("a" * 64, "", "a b", "x\ny", "*.lab.test"):
        done = fwmodel("connect", "127.0.0.1:1", "--server-name", name,
                       hal=f"fake:{tmp_path / 'none.flash'}")
        assert done.returncode == ExitCode.BAD_INPUT
        assert "--server-name" in one_line(done)


@pytest.mark.parametrize("command", [[sys.executable, "-m", "hal.emulator"],
                                     [sys.executable, "board/run_qemu.py"]])
def test_an_agent_flash_path_that_names_a_folder_is_bad_usage(command: list[str]) -> None:
    done = subprocess.run([*command, "--flash", "", "--pty"], capture_output=True, text=True,
                          timeout=60, check=False, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == ExitCode.BAD_INPUT
    assert "names a folder, not a flash file" in one_line(done)
