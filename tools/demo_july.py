"""The July 2024 image-signing key change, end to end, on the software machine.

    python -m tools.demo --rehearsal july-2024 [--images images/build]   (make demo-july-2024)

Microsoft, 10 July 2024: "We have released an update to the trusted keystore of Azure Sphere
devices which will result in all devices (regardless of whether they are on the Retail or
Retail Eval feed) installing this update and rebooting. This small update does not change the OS
version." From 24 July 2024 AS3 signed new images with the new key. The rehearsal (each device
step is the `fwmodel` command it prints, run in this process):
1. provisions a device as it was before: the 2024 keystore (the old image-signing key only) and
   the 2024 store, its clock at 10 July 2024;
2. offers it an update signed by the new key (feeds-2024-07-newkey): refused, nothing changes;
3. runs it a day on the July 2024 feed (feeds-2024-07): it checks at its first connection,
   installs keystore-2024-07 (the old key kept, the new one added), reboots, checks again at
   once and 20 hours later; the boot count rises, the OS version stays;
4. offers the update signed by the new key again: installed.
Exit 0 when everything happened as above.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tools.rehearsal import device, reboot_problems, running, say, status_of

#: When the rehearsal's device starts: the day Microsoft released the keystore update.
JULY_10 = "2024-07-10T00:00:00Z"


def rehearse_july(images: Path, work: Path) -> list[str]:
    """Run the story; return what did not happen as it should (empty: all did)."""
    flash, problems = work / "device.flash", []
    newkey, july = str(images / "feeds-2024-07-newkey"), str(images / "feeds-2024-07")
    say("provision a device as it was before 10 July 2024: the 2024 keystore (the old "
        "image-signing key only) and the 2024 store")
    if device(flash, "--at", JULY_10, "provision", "--images", str(images)):
        return ["provisioning failed"]
    device(flash, "status")
    before = status_of(flash)
    say("an update signed by the new image-signing key: refused, the device does not know it yet")
    if device(flash, "update", "--feed", newkey) != 1 or running(
            status_of(flash), "store") != running(before, "store"):
        problems.append("the device took an image signed by a key it did not trust")
    say("10 July 2024: the trusted-keystore update on the Retail feed; the device runs a day, "
        "checking at its first connection, then every 20 hours")
    if device(flash, "run", "--feed", july, "--hours", "24"):
        return [*problems, "the keystore update failed"]
    device(flash, "status")
    after = status_of(flash)
    problems += reboot_problems(before, after, "keystore", "keystore-2024-07")
    say("images signed by the new key are taken now (the old key still trusted: the device "
        "booted the store it signed)")
    if device(flash, "update", "--feed", newkey) or running(
            status_of(flash), "store") != "certstore-2024-newkey":
        problems.append("the update signed by the new key was not installed")
    device(flash, "status")
    return problems


def main_july(images: Path) -> int:
    """The rehearsal in a fresh work folder under `images` (the images must be built)."""
    work = images / "demo-july-2024"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    problems = rehearse_july(images, work)
    say("done: " + ("the rehearsal went as July 2024 did" if not problems
                    else "; ".join(problems)))
    print("the device's flash is kept in", work / "device.flash")
    return 1 if problems else 0
