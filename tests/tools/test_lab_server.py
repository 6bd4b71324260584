"""`lab-server`: a named HTTPS endpoint on 127.0.0.1 chaining to a lab root, driven as a user
drives it (the console script in a subprocess), reached with `fwmodel connect` and the audit
exactly as its first line says, stopped by SIGTERM or Ctrl-C (exit 0, no traceback)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_model.cli import fwmodel
from tests.fixtures import lab_pki
from tools import lab_server
from tools.pki import LabPki
from tools.recipes import build_from_recipe

__all__ = ["lab_pki"]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT = 60
STORE = """\
type = "UpdateCertStore"
name = "{name}"
component_id = "e5f5f3fc-2eb5-4d1b-a650-b72364446807"
image_id = "{image_id}"
build_time = 2025-01-01T00:00:00Z
security_version = 1

[store]
certificates = [{files}]
"""


def build_store(folder: Path, name: str, image_id: str, files: list[Path]) -> Path:
    recipe = folder / f"{name}.toml"
    recipe.write_text(STORE.format(name=name, image_id=image_id,
                                   files=", ".join(f'"{f}"' for f in files)))
    out = folder / f"{name}.imagepackage"
    build_from_recipe(recipe, folder / "keys", out)
    return out


@pytest.fixture(scope="module")
def lab(lab_pki: LabPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the lab keys, a store with the lab root (`trusting`) and one without
    (`shipped`), and a device provisioned with each (`trusting.flash`, `shipped.flash`)."""
    folder = tmp_path_factory.mktemp("lab-server")
    (folder / "keys").symlink_to(lab_pki.folder)
    g2 = REPO / "images" / "roots" / "DigiCert_Global_Root_G2.pem"
    stores = {
        "trusting": build_store(folder, "trusting", "0c7a3a54-4c6e-4b0e-8a55-5d0f8f3b0001",
                                [lab_pki.folder / "root.pem", g2]),
        "shipped": build_store(folder, "shipped", "0c7a3a54-4c6e-4b0e-8a55-5d0f8f3b0002", [g2]),
    }
    keystore = folder / "keystore.imagepackage"
    build_from_recipe(REPO / "images" / "recipes" / "keystore-2024.toml", folder / "keys",
                      keystore)
    for name, store in stores.items():
        with contextlib.redirect_stdout(io.StringIO()):
            assert fwmodel.main(["--hal", f"fake:{folder / name}.flash", "provision", "--keys",
                                 str(folder / "keys"), "--keystore", str(keystore),
                                 "--store", str(store)]) == 0
    return folder


class Server:
    """A `lab-server` process and its first line."""

    def __init__(self, *args: str) -> None:
        # unbuffered bytes: what follows the first line stays in the pipe for communicate()
        self.process = subprocess.Popen([str(BIN / "lab-server"), *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, bufsize=0)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], TIMEOUT)
        assert ready, "lab-server printed nothing"
        self.first = self.process.stdout.readline().decode().rstrip("\n")

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=TIMEOUT)
        return self.process.returncode, out.decode(), err.decode()


@contextlib.contextmanager
def running(*args: str) -> Iterator[Server]:
    server = Server(*args)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate(timeout=TIMEOUT)


def run_printed(line: str, *before: str) -> subprocess.CompletedProcess[str]:
    """A command line the server printed, run as its console script; `before` goes right
    after the program name (fwmodel's --hal, in place of the line's `--hal HAL`)."""
    program, *rest = shlex.split(line.replace("--hal HAL ", ""))
    return subprocess.run([str(BIN / program), *before, *rest], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False, cwd=REPO)


def test_its_first_line_says_how_and_fwmodel_connect_reaches_it(lab: Path) -> None:
    with running("api.lab.test", "--keys", str(lab / "keys"), "--json") as server:
        reach: dict[str, Any] = json.loads(server.first)
        port = reach["port"]
        assert reach["address"] == "127.0.0.1" and isinstance(port, int) and port > 0
        assert reach["root"] == str(lab / "keys" / "root.pem")
        assert reach["root_subject"] == "CN=Lab Root (fused),O=sphere-fwmodel lab"
        assert reach["connect"] == (f"fwmodel --hal HAL connect 127.0.0.1:{port} "
                                    "--server-name api.lab.test")
        assert reach["audit"] == (f"audit-endpoints api.lab.test:{port} --resolve "
                                  f"api.lab.test:{port}:127.0.0.1 --before STORE --after STORE")
        done = run_printed(reach["connect"], "--hal", f"fake:{lab / 'trusting.flash'}")
        assert done.returncode == 0, done.stderr
        assert done.stdout == (f"connected to 127.0.0.1:{port}: TLSv1.3, chain api.lab.test -> "
                               "Lab Root (fused) (store root root)\n")
        code, out, err = server.stop(signal.SIGTERM)
    assert code == 0 and err == "", err
    lines = out.splitlines()
    assert lines[0] == "stop with Ctrl-C (or SIGTERM)" and lines[-1] == "stopped", out
    assert len(lines) == 3 and re.fullmatch(r"127\.0\.0\.1:\d+ handshake ok \(TLSv1\.3\)",
                                            lines[1]), out


def test_a_device_without_the_root_fails_and_the_server_goes_on(lab: Path) -> None:
    with running("api.lab.test", "--keys", str(lab / "keys")) as server:
        port = int(server.first.split(" port ", 1)[1].split(";")[0])
        assert server.first.startswith(f"serving https://api.lab.test:{port}/ on 127.0.0.1 ")
        assert f"trust {lab / 'keys' / 'root.pem'} (CN=Lab Root (fused)" in server.first
        connect = f"fwmodel --hal HAL connect 127.0.0.1:{port} --server-name api.lab.test"
        assert f"; connect: {connect}; audit: audit-endpoints api.lab.test:{port} " in server.first
        refused = run_printed(connect, "--hal", f"fake:{lab / 'shipped.flash'}")
        assert refused.returncode == 1 and "unable to get local issuer certificate" in \
            refused.stderr, refused.stderr
        assert run_printed(connect, "--hal", f"fake:{lab / 'trusting.flash'}").returncode == 0
        code, out, err = server.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in err and err == ""
    assert "handshake failed: TLSV1_ALERT_UNKNOWN_CA" in out
    assert out.splitlines()[-1] == "stopped"


def test_the_printed_audit_line_judges_the_endpoint(lab: Path) -> None:
    """Before: a store with the lab root; after: one without. The endpoint breaks (exit 1)."""
    with running("api.lab.test", "--keys", str(lab / "keys"), "--json") as server:
        line = json.loads(server.first)["audit"]
        line = line.replace("--before STORE", f"--before {lab / 'trusting.imagepackage'}")
        line = line.replace("--after STORE", f"--after {lab / 'shipped.imagepackage'}")
        done = run_printed(line + " --json")
        server.stop()
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "api.lab.test" in done.stdout


def test_ipv6_loopback_lines_bracket_the_address(lab: Path) -> None:
    reach = lab_server.Reach("api.lab.test", "::1", 8443, lab / "keys" / "root.pem", "CN=x")
    assert reach.connect == "fwmodel --hal HAL connect [::1]:8443 --server-name api.lab.test"
    assert reach.audit.startswith("audit-endpoints api.lab.test:8443 --resolve "
                                  "api.lab.test:8443:[::1] --before")


def test_an_ip_address_needs_no_server_name(lab: Path) -> None:
    with running("127.0.0.1", "--keys", str(lab / "keys"), "--json") as server:
        reach = json.loads(server.first)
        port = reach["port"]
        assert reach["connect"] == f"fwmodel --hal HAL connect 127.0.0.1:{port}"
        assert reach["audit"].startswith(f"audit-endpoints 127.0.0.1:{port} --before")
        assert run_printed(reach["connect"], "--hal",
                           f"fake:{lab / 'trusting.flash'}").returncode == 0
        assert server.stop()[0] == 0


def call(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = lab_server.main(list(args))
        except SystemExit as leave:
            code = int(leave.code or 0)
    return code, err.getvalue()


@pytest.mark.parametrize(("args", "text"), [
    (["api.lab.test", "--address", "0.0.0.0"], "listens on the loopback interface only"),
    (["api.lab.test", "--address", "192.0.2.1"], "listens on the loopback interface only"),
    (["api.lab.test", "--address", "example.com"], "not an IP address"),
    (["*.lab.test"], "is not a host name or an IP address"),
    (["bad name"], "is not a host name or an IP address"),
    (["api.lab.test", "--port", "70000"], "--port 70000: 0..65535"),
])
def test_bad_usage_is_one_line_and_nothing_listens(args: list[str], text: str,
                                                   lab: Path) -> None:
    code, err = call(*args, "--keys", str(lab / "keys"))
    assert code == 2 and text in err, err
    assert len(err.splitlines()) == 1 and err.startswith("lab-server: error: ")


def test_a_port_in_use_and_missing_keys_are_refused(lab: Path, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, err = call("api.lab.test", "--keys", str(lab / "keys"), "--port", str(port))
    assert code == 2 and f"cannot listen on 127.0.0.1 port {port}" in err, err
    code, err = call("api.lab.test", "--keys", str(tmp_path))
    assert code == 2 and f"{tmp_path} holds no lab PKI (root.key, root.pem): make one" in err
    assert len(err.splitlines()) == 1


def test_a_refusal_through_the_console_script(lab: Path) -> None:
    done = subprocess.run([str(BIN / "lab-server"), "api.lab.test", "--address", "0.0.0.0",
                           "--keys", str(lab / "keys")], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("lab-server: error: --address '0.0.0.0'")
    assert len(done.stderr.splitlines()) == 1


def test_a_stalled_or_plain_client_holds_up_nobody(lab: Path) -> None:
    """A client that connects and says nothing, and one that speaks plain HTTP: the device still
    connects, the plain one is a line of output, and SIGTERM stops the server with the stalled
    one still connected."""
    with running("api.lab.test", "--keys", str(lab / "keys"), "--json") as server:
        reach = json.loads(server.first)
        with socket.create_connection(("127.0.0.1", reach["port"])) as stalled, \
                socket.create_connection(("127.0.0.1", reach["port"])) as plain:
            plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert plain.recv(1024) == b""  # the server gives up on it
            assert run_printed(reach["connect"], "--hal",
                               f"fake:{lab / 'trusting.flash'}").returncode == 0
            code, out, err = server.stop()  # while the stalled client is still connected
            assert stalled.fileno() >= 0
    assert code == 0 and err == ""
    assert "handshake failed: HTTP_REQUEST" in out and "handshake ok (TLSv1.3)" in out


def test_an_ipv6_server_s_url_brackets_its_address(tmp_path: Path) -> None:
    reach = lab_server.Reach("::1", "::1", 8443, tmp_path / "root.pem", "Lab Root")
    assert reach.url == "https://[::1]:8443/"
    assert reach.line().startswith("serving https://[::1]:8443/ on ::1 port 8443;")
