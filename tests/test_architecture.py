"""The rooms as the design draws them, held by tools rather than hope: the import layers
(import-linter, which `make test` runs, and shown here to fail on a tree that breaks a rule),
rooms whose tests import only their own room, small modules, every error of a kind, and the
network guard every test process runs under."""

from __future__ import annotations

import ast
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("policy", "hal", "firmware_model", "tools")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin"})


def copy_tree(destination: Path) -> Path:
    for name in (*PACKAGES, "pyproject.toml"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, destination / name)
    return destination


def test_the_layers_hold() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" not in done.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("hal/soft/clock.py", "import firmware_model.errors", "tools -> firmware_model -> hal"),
    ("firmware_model/device/slots.py", "import tools.files", "tools -> firmware_model -> hal"),
    ("policy/cli.py", "import hal.errors", "tools -> firmware_model -> hal -> policy"),
    ("firmware_model/image/package.py", "import firmware_model.device.model",
     "inside the device model"),
    ("firmware_model/image/sections.py", "import firmware_model.agent.decisions",
     "inside the device model"),
    ("hal/soft/flash.py", "import hal.serial.port", "inside the hardware layer"),
])
def test_an_import_across_a_layer_fails_the_check(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = copy_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text() + f"\n{line}  # crossing a layer on purpose\n")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and contract in done.stdout.replace("\n", " ")


def test_the_hal_tests_import_neither_the_device_model_nor_the_tools() -> None:
    script = ("import sys, pytest; pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider',"
              " 'tests/hal']); print(sorted({m.split('.')[0] for m in sys.modules"
              " if m.startswith(('firmware_model', 'tools'))}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:] + done.stderr


def _library_modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))


def test_no_library_module_is_over_400_lines() -> None:
    long = {str(path.relative_to(REPO)): n for path in _library_modules()
            if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_every_package_says_what_it_owns() -> None:
    for init in (REPO / package for package in PACKAGES):
        for path in [init / "__init__.py", *init.rglob("*/__init__.py")]:
            if path.exists():
                tree = ast.parse(path.read_text())
                assert ast.get_docstring(tree), f"{path.relative_to(REPO)} has no docstring"


def test_no_error_is_raised_without_a_kind() -> None:
    """Every exception class of the library is of a `policy.errors` kind (so the one CLI policy
    knows its exit code), and the bases that have none are never raised themselves."""
    import firmware_model.errors
    import hal.errors
    from policy.cli import ExitCode, exit_code
    from policy.errors import KINDS

    classes = [c for module in (firmware_model.errors, hal.errors) for c in vars(module).values()
               if isinstance(c, type) and issubclass(c, Exception)
               and c.__module__ == module.__name__]
    kindless = [c.__name__ for c in classes if not issubclass(c, KINDS)]
    assert kindless == ["FwModelError", "CertStoreError"]  # CertStoreError: certstore_error
    for path in _library_modules():                       # makes one of its two kinds
        assert "raise FwModelError(" not in path.read_text(), path
        assert "CertStoreError(" not in path.read_text().replace("class CertStoreError(", ""), path
    assert exit_code(firmware_model.errors.SignatureError("x")) is ExitCode.REFUSED
    assert exit_code(hal.errors.DeviceBusyError("x")) is ExitCode.BUSY


def test_the_network_guard_refuses_other_addresses_here_and_in_subprocesses() -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="network guard"):
        sock.connect(("192.0.2.1", 443))
    with pytest.raises(socket.gaierror, match="network guard"):
        socket.getaddrinfo("example.com", 443)
    child = ("import socket\ntry:\n    socket.create_connection(('192.168.35.2', 443), 1)\n"
             "except OSError as e:\n    print(e)")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=30)
    assert "network guard" in done.stdout
