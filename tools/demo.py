"""The February 2025 certificate-store update, end to end, on the software machine.

    python -m tools.demo [--images images/build] [--rehearsal february-2025|july-2024]

(`--rehearsal july-2024` runs the July 2024 image-signing key change instead: tools/demo_july.py.)

What it does (each step is the `fwmodel` or `audit-endpoints` command it prints, run in this
process):
1. builds two demo stores from recipes: "before" = the three real roots plus two lab roots,
   "after" = the February 2025 store (Baltimore CyberTrust Root removed) plus one lab root.
   The lab roots stand in for Baltimore and for DigiCert Global Root G2 in TLS: nobody can
   sign a server certificate with the real roots, so the app's two endpoints,
   legacy-api.contoso.test and telemetry.contoso.test, served on 127.0.0.1, chain to the
   stand-ins;
2. audits the two endpoints against both stores at 20 February 2025, before anything is
   installed (Microsoft's advice: find what breaks first): legacy-api breaks;
3. provisions a device with the "before" store; both endpoints work;
4. publishes the "after" store on the Retail feed (HTTP on 127.0.0.1), lets an app defer the
   install by two hours of device time, installs through the reboot: the boot count rises, the
   OS version stays;
5. shows legacy-api failing, as the audit said, and telemetry still working.
Servers are stopped and nothing is left running. Exit 0 when everything happened as above.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from firmware_model.device.provision import KEYSTORE_FILE
from firmware_model.image.signing import Signer
from policy.cli import OneLineParser, run_guarded
from tools import audit_endpoints
from tools.build_images import build_all, publish_feed
from tools.demo_july import main_july
from tools.lab_server import LabServer, bind, server_context
from tools.pki import issue, new_key, write_certificate
from tools.recipes import build_from_recipe
from tools.rehearsal import (
    boots,
    command,
    device,
    reboot_problems,
    say,
    shown,
    status_of,
)

ROOTS = Path(__file__).resolve().parent.parent / "images" / "roots"
#: The rehearsals `--rehearsal` names; the first is the default (`make demo`).
REHEARSALS = ("february-2025", "july-2024")
STORE_COMPONENT = "e5f5f3fc-2eb5-4d1b-a650-b72364446807"  # images/recipes/certstore-*.toml
STAND_INS = {"baltimore": "Lab stand-in for Baltimore CyberTrust Root",
             "digicert": "Lab stand-in for DigiCert Global Root G2"}
#: The app's endpoints, by the root their chain ends in.
ENDPOINTS = {"baltimore": "legacy-api.contoso.test", "digicert": "telemetry.contoso.test"}
#: When the audit judges: after the update was announced, before Baltimore expired.
AUDIT_AT = "2025-02-20"
#: The device's clock when the rehearsal starts: the day Microsoft released the update.
UPDATE_DAY = "2025-02-26T00:00:00Z"

STORE_RECIPE = """\
type = "UpdateCertStore"
name = "{name}"
component_id = "{component}"
image_id = "{image_id}"
build_time = {built}
security_version = {version}

[store]
certificates = [{files}]
"""

MANIFEST_RECIPE = """\
type = "BaseSystemUpdateManifest"
name = "demo-bsu-2025-02"
component_id = "f8c320c7-db5e-4805-b1e9-1535cce8f4fc"
image_id = "c0de2025-0000-4000-8000-000000000002"
build_time = 2025-02-10T00:00:00Z

[manifest]
images = ["demo-store-after.imagepackage"]
"""


def root_file(kind: str) -> str:
    """The stand-in root's file name stem, which is also its name in the store."""
    return STAND_INS[kind].replace(" ", "_")


def lab_roots(folder: Path) -> dict[str, Signer]:
    """A stand-in root per kind (its certificate written to `folder`, for the store recipes)."""
    folder.mkdir(parents=True, exist_ok=True)
    roots = {}
    for kind, name in STAND_INS.items():
        key = new_key()
        roots[kind] = Signer(key, issue(name, key, ca=True))
        write_certificate(folder / f"{root_file(kind)}.pem", roots[kind].certificate)
    return roots


def build_demo_images(images: Path, work: Path) -> None:
    """The two demo stores (real roots + stand-ins) and a Retail feed serving the second."""
    real = ["Baltimore_CyberTrust_Root", "DigiCert_Global_Root_G2",
            "Microsoft_RSA_Root_Certificate_Authority_2017"]
    lab = {k: str(work / "tls" / f"{root_file(k)}.pem") for k in STAND_INS}
    stores = {
        "before": ([str(ROOTS / f"{r}.pem") for r in real] + list(lab.values()), 1, "2024-06-01"),
        "after": ([str(ROOTS / f"{r}.pem") for r in real[1:]] + [lab["digicert"]], 2,
                  "2025-02-10"),
    }
    for index, (label, (files, version, day)) in enumerate(stores.items(), start=1):
        recipe = work / f"demo-store-{label}.toml"
        recipe.write_text(STORE_RECIPE.format(
            name=f"demo-store-{label}", component=STORE_COMPONENT,
            image_id=f"c0de2025-0000-4000-8000-00000000010{index}", built=f"{day}T00:00:00Z",
            version=version, files=", ".join(f'"{f}"' for f in files)))
        build_from_recipe(recipe, images / "keys", work / f"demo-store-{label}.imagepackage")
    (work / "demo-manifest.toml").write_text(MANIFEST_RECIPE)
    build_from_recipe(work / "demo-manifest.toml", images / "keys",
                      work / "demo-manifest.imagepackage")
    publish_feed(work / "demo-manifest.imagepackage", work, work / "feeds" / "Retail")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves a folder without logging every request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(server: http.server.ThreadingHTTPServer) -> Iterator[int]:
    """Serve in a thread on 127.0.0.1; yield the port; stop and close on exit."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def endpoint_server(kind: str, root: Signer) -> LabServer:
    """The app's endpoint of `kind` on 127.0.0.1, its chain ending in that stand-in root."""
    name = ENDPOINTS[kind]
    return bind("127.0.0.1", 0, name, server_context(name, root), log=lambda _line: None)


def feed_server(folder: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_Quiet, directory=str(folder))
    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)


def audit(images: Path, work: Path, ports: dict[str, int]) -> list[str]:
    """Audit both endpoints against the two demo stores at AUDIT_AT; what went wrong."""
    args: list[str] = []
    for kind, port in ports.items():
        args += [f"{ENDPOINTS[kind]}:{port}", "--resolve", f"{ENDPOINTS[kind]}:{port}:127.0.0.1"]
    args += ["--before", shown(work / "demo-store-before.imagepackage"),
             "--after", shown(work / "demo-store-after.imagepackage"),
             "--store-keystore", shown(images / KEYSTORE_FILE),
             "--root-pubkey", shown(images / "keys" / "root.pub.pem"), "--at", AUDIT_AT]
    if command("audit-endpoints", audit_endpoints.main, args) != 1:
        return ["the audit did not find the endpoint the update breaks"]
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        audit_endpoints.main([*args, "--json"])
    breaking = {row["endpoint"].rpartition(":")[0] for row in json.loads(captured.getvalue())
                if row.get("breaks")}
    if breaking != {ENDPOINTS["baltimore"]}:
        return [f"the audit said {sorted(breaking)} break, not {ENDPOINTS['baltimore']}"]
    return []


def connect(flash: Path, kind: str, port: int) -> int:
    return device(flash, "connect", f"127.0.0.1:{port}", "--server-name", ENDPOINTS[kind])


def rehearse(images: Path, work: Path, roots: dict[str, Signer]) -> list[str]:
    """Run the story; return what did not happen as it should (empty: all did)."""
    flash, problems = work / "device.flash", []
    with serving(endpoint_server("baltimore", roots["baltimore"])) as old, \
            serving(endpoint_server("digicert", roots["digicert"])) as kept, \
            serving(feed_server(work / "feeds")) as feed:
        ports = {"baltimore": old, "digicert": kept}
        say(f"the app talks to {ENDPOINTS['baltimore']} (its chain ends in a lab stand-in for "
            f"Baltimore CyberTrust Root) and {ENDPOINTS['digicert']} (a stand-in for DigiCert "
            "Global Root G2), both served on 127.0.0.1")
        say(f"first, as Microsoft advised, audit the app's endpoints: the pre-2025 store against "
            f"the February 2025 one, judged on {AUDIT_AT} (before Baltimore expired on "
            "2025-05-12)")
        problems += audit(images, work, ports)
        say("provision a device with the pre-2025 store (three real roots + two lab stand-ins)")
        if device(flash, "--at", UPDATE_DAY, "provision", "--images", shown(images),
                  "--store", shown(work / "demo-store-before.imagepackage")):
            return [*problems, "provisioning failed"]
        device(flash, "status")
        before = status_of(flash)
        say("both endpoints work before the update")
        for kind, port in ports.items():
            if connect(flash, kind, port):
                problems.append(f"{ENDPOINTS[kind]} failed before the update")
        say("the Retail feed publishes the February 2025 store; an app defers 120 minutes")
        if device(flash, "update", "--feed", f"http://127.0.0.1:{feed}/", "--channel",
                  "Retail", "--defer", "120"):
            return [*problems, "the update failed"]
        device(flash, "status")
        after = status_of(flash)
        say(f"after the reboot: {ENDPOINTS['baltimore']} fails, as the audit said; "
            f"{ENDPOINTS['digicert']} still works")
        if connect(flash, "baltimore", old) == 0:
            problems.append(f"{ENDPOINTS['baltimore']} still works after the update")
        if connect(flash, "digicert", kept):
            problems.append(f"{ENDPOINTS['digicert']} broke")
    problems += reboot_problems(before, after, "store", "demo-store-after")
    if not problems:
        say(f"OS version {after.get('os_version')} before and after, boot count {boots(before)}"
            f" -> {boots(after)}: the store update rebooted the device and left the OS as it "
            "was")
    return problems


def main(argv: list[str] | None = None) -> int:
    top = OneLineParser(prog="demo", description=(__doc__ or "").splitlines()[0])
    top.add_argument("--images", type=Path, default=Path("images/build"))
    top.add_argument("--rehearsal", choices=REHEARSALS, default=REHEARSALS[0],
                     help="which update to rehearse (default: %(default)s)")
    args = top.parse_args(argv)
    images: Path = args.images.resolve()

    def body() -> int:
        if not (images / "keys" / "root.hash").exists() or args.rehearsal != REHEARSALS[0]:
            build_all(images)  # the July 2024 feeds are newer than some build folders
        if args.rehearsal == "july-2024":
            return main_july(images)
        work = images / "demo"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        roots = lab_roots(work / "tls")
        build_demo_images(images, work)
        problems = rehearse(images, work, roots)
        say("done: " + ("the rehearsal went as February 2025 did" if not problems
                        else "; ".join(problems)))
        print(f"servers stopped; the device is kept: .venv/bin/fwmodel --hal "
              f"fake:{shown(work / 'device.flash')} status shows it. Next: the README's "
              "'Three ways to use it'.")
        return 1 if problems else 0

    return run_guarded("demo", body)


if __name__ == "__main__":
    sys.exit(main())
