"""Your own images, end to end, exactly as the README tells it: a lab PKI of your own, a device
provisioned to trust its root, a store you craft, published with `imagetool feed`, installed
with `fwmodel update --feed`, checked with `fwmodel status`; then a lab server chaining to your
root, reached from the device; then a replayed manifest refused. The shell blocks below are
the README's text, run by bash in a temporary folder (with `images/` of this repository) with
the console scripts of this virtual environment on PATH."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from tools.pki import keygen

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT = 120

#: README: "Your own keys, end to end" (after `. .venv/bin/activate`).
LOOP = """\
imagetool keygen --out lab-keys
imagetool build images/recipes/keystore-2024.toml --keys lab-keys -o lab-keystore.imagepackage
imagetool build images/recipes/certstore-2024.toml --keys lab-keys -o lab-store-1.imagepackage
fwmodel --hal fake:lab.flash provision --keys lab-keys \\
    --keystore lab-keystore.imagepackage --store lab-store-1.imagepackage
cat > lab-store-2.toml <<'EOF'
# The store you craft: Baltimore dropped, your lab root added.
type = "UpdateCertStore"
name = "lab-store-2"
component_id = "e5f5f3fc-2eb5-4d1b-a650-b72364446807"  # the store component of the device
image_id = "c0ffee00-0000-4000-8000-000000000002"      # a GUID of your own, new per image
build_time = 2025-03-01T00:00:00Z
security_version = 2                                   # not below the running store's

[store]
certificates = ["images/roots/DigiCert_Global_Root_G2.pem",
                "images/roots/Microsoft_RSA_Root_Certificate_Authority_2017.pem"]
bundles = ["lab-keys/root.pem"]   # each certificate of a bundle: certs/<its common name>.pem
EOF
imagetool build lab-store-2.toml --keys lab-keys -o lab-store-2.imagepackage
imagetool feed lab-store-2.imagepackage --keys lab-keys --channel Retail -o lab-feed
fwmodel --hal fake:lab.flash update --feed lab-feed --channel Retail
fwmodel --hal fake:lab.flash status
"""

#: README: the lab server (PORT is what its first line says).
SERVER = "lab-server api.lab.test --keys lab-keys"
CONNECT = "fwmodel --hal fake:lab.flash connect 127.0.0.1:PORT --server-name api.lab.test"
AUDIT = """\
audit-endpoints api.lab.test:PORT --resolve api.lab.test:PORT:127.0.0.1 \\
    --before lab-store-1.imagepackage --after lab-store-2.imagepackage \\
    --store-keystore lab-keystore.imagepackage --root-pubkey lab-keys/root.pub.pem
"""

#: README: rehearsing a replay (the second command exits 1).
REPLAY = """\
imagetool feed lab-store-1.imagepackage --keys lab-keys --channel Retail -o lab-feed-old \\
    --date 2024-12-01
fwmodel --hal fake:lab.flash update --feed lab-feed-old --channel Retail
"""


def environment() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", script], cwd=cwd,
                          env=environment(), capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)


def shell(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shlex.split(line), cwd=cwd, env=environment(), capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def test_your_own_keys_from_keygen_to_an_installed_store(tmp_path: Path) -> None:
    (tmp_path / "images").symlink_to(REPO / "images")
    done = bash(LOOP, tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "provisioned: keystore keystore-2024, store certstore-2024 (3 roots)" in done.stdout
    assert "lab-feed/Retail: manifest " in done.stdout
    assert "installed: store lab-store-2 (security version 2)" in done.stdout
    status = json.loads(shell("fwmodel --hal fake:lab.flash status --json", tmp_path).stdout)
    assert status["slots"]["store"]["active"] == "B"
    assert status["slots"]["store"]["image"]["name"] == "lab-store-2"
    assert status["security_versions"]["store"] == {"fused": 2, "running": 2}
    roots = [root["name"] for root in status["store"]["certificates"]]
    assert roots == ["DigiCert_Global_Root_G2", "Lab_Root_fused",
                     "Microsoft_RSA_Root_Certificate_Authority_2017"]

    server = subprocess.Popen(shlex.split(SERVER), cwd=tmp_path, env=environment(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        assert server.stdout is not None
        first = server.stdout.readline().decode()
        port = re.search(r" on 127\.0\.0\.1 port (\d+);", first)
        assert port, first
        connect, audit = (line.replace("PORT", port[1]) for line in (CONNECT, AUDIT))
        assert f"connect: {connect.replace('fake:lab.flash', 'HAL')};" in first
        assert f"audit: audit-endpoints api.lab.test:{port[1]} --resolve " in first
        reached = bash(connect, tmp_path)
        assert reached.returncode == 0, reached.stderr
        assert "chain api.lab.test -> Lab Root (fused) (store root Lab_Root_fused)" in \
            reached.stdout
        judged = bash(audit, tmp_path)  # fails before (no lab root), ok after: no break
        assert judged.returncode == 0 and judged.stderr == "", (judged.stdout, judged.stderr)
        assert f"api.lab.test:{port[1]}" in judged.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=TIMEOUT)
    assert server.returncode == 0 and err == b"" and out.decode().endswith("stopped\n")

    replay = bash(REPLAY, tmp_path)
    assert replay.returncode == 1, (replay.stdout, replay.stderr)
    assert replay.stderr.startswith("fwmodel: error: the manifest was built 2024-12-01T00:00:00Z")
    assert "a replay" in replay.stderr and len(replay.stderr.splitlines()) == 1


def test_provision_from_lab_keys_needs_the_images(tmp_path: Path) -> None:
    """--keys has no build folder to take the keystore and store from: one line, exit 2, and no
    device file is left behind; --keys and --root-hash exclude each other."""
    keygen(tmp_path / "lab-keys")
    done = shell("fwmodel --hal fake:lab.flash provision --keys lab-keys", tmp_path)
    assert done.returncode == 2 and done.stderr == (
        "fwmodel: error: --keys needs --keystore and --store (the images to provision, built "
        "with those keys), or --images for a build folder\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab-keys"]
    both = shell(f"fwmodel --hal fake:lab.flash provision --keys lab-keys --root-hash {'0' * 64}",
                 tmp_path)
    assert both.returncode == 2 and "not allowed with argument --keys" in both.stderr
    absent = shell("fwmodel --hal fake:lab.flash provision --keys nowhere --keystore k --store s",
                   tmp_path)
    assert absent.returncode == 2 and "nowhere/root.hash" in absent.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab-keys"]


def test_these_blocks_are_the_readmes_own_text() -> None:
    """The shell run above is what the README shows, word for word (indented as a block)."""
    readme = (REPO / "README.md").read_text()
    for block in (LOOP, SERVER + " &", CONNECT, AUDIT, REPLAY):  # the test runs the server itself
        indented = "".join(f"    {line}\n" if line else "\n" for line in block.splitlines())
        assert indented in readme, block
