"""`make demo`'s script, run as a user runs it: the whole February 2025 story, in a fresh
build folder, ends well and leaves no server running."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_tells_the_february_2025_story(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "tools/demo.py", "--images", str(tmp_path / "build")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "rehearsal went as February 2025 did" in out
    # the audit comes first and finds the endpoint the update breaks, by its host name
    audit, device = out.split("provision a device", 1)
    assert "$ audit-endpoints legacy-api.contoso.test:" in audit and "--at 2025-02-20" in audit
    assert re.search(r"^legacy-api\.contoso\.test:\d+ .* ok +fail .* breaks", audit, re.M)
    assert re.search(r"^telemetry\.contoso\.test:\d+ .* ok +ok ", audit, re.M)
    assert "1 endpoint breaks with the new store" in audit and "(exit 1)" in audit
    before, after = device.split("UpdateReadyForInstall (Final)", 1)
    # both endpoints connect before; both stores list the real roots that stay
    assert before.count("connected to 127.0.0.1") == 2
    assert "--server-name legacy-api.contoso.test" in before
    for real in ("DigiCert_Global_Root_G2", "Microsoft_RSA_Root_Certificate_Authority_2017"):
        assert f"root {real}" in before and f"root {real}" in after
    assert "root Baltimore_CyberTrust_Root:" in before
    assert "root Baltimore_CyberTrust_Root:" not in after
    # the app deferred the install by exactly 120 minutes of device time
    assert re.search(r"2025-02-26T02:00:00Z UpdateReadyForInstall", out)
    # after the reboot: the Baltimore-style endpoint fails, the DigiCert-style one works
    assert "store: slot B, demo-store-after" in after
    tail = after.split("after the reboot")[1]
    assert "unable to get local issuer certificate" in run.stderr  # errors go to stderr
    assert "(exit 1)" in tail
    assert tail.count("connected to 127.0.0.1") == 1
    assert "Lab stand-in for DigiCert Global Root G2" in tail
    # a store update reboots the device and leaves the OS version as it was
    assert "OS version 24.03, boot 1 since power-up" in before
    assert "OS version 24.03, boot 2 since power-up" in after
    assert "OS version 24.03 before and after, boot count 1 -> 2" in tail


def test_the_july_2024_rehearsal_shows_the_keystore_update_end_to_end(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--rehearsal", "july-2024",
         "--images", str(tmp_path / "build")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "rehearsal went as July 2024 did" in out
    refused, rest = out.split("the trusted-keystore update on the Retail feed")
    assert "(exit 1)" in refused and "is not in the keystore" in run.stderr
    assert "installed keystore-2024-07 (security version 1); the device reset" in rest
    assert "OS version 24.03, boot 1 since power-up" in refused
    assert "OS version 24.03, boot 2 since power-up" in rest  # rebooted, same OS version
    assert "keystore: slot B, keystore-2024-07" in rest
    assert "store: slot B, certstore-2024-newkey" in rest.split("are taken now")[1]
