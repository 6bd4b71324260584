"""The February 2025 certificate-store update, end to end, on the software machine.

    python tools/demo.py [--images images/build] [--rehearsal february-2025|july-2024]

(`--rehearsal july-2024` runs the July 2024 image-signing key change instead: tools/demo_july.py.)

What it does (each device step is the `fwmodel` command it prints, run in this process):
1. builds two demo stores from recipes: "before" = the three real roots plus two lab roots,
   "after" = the February 2025 store (Baltimore CyberTrust Root removed) plus one lab root.
   The lab roots stand in for Baltimore and for DigiCert Global Root G2 in TLS: nobody can
   sign a server certificate with the real roots, so the servers chain to the stand-ins;
2. provisions a device with the "before" store and starts two HTTPS servers on 127.0.0.1,
   one whose chain ends in each stand-in; both connections work;
3. publishes the "after" store on the Retail feed (HTTP on 127.0.0.1), lets an app defer the
   install by two hours of device time, installs through the reboot;
4. shows the Baltimore-style endpoint failing and the DigiCert-style one still working.
Servers are stopped and nothing is left running. Exit 0 when everything happened as above.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import ipaddress
import shutil
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509

from firmware_model.cli import fwmodel
from policy.cli import run_guarded
from tools.build_images import build_all, publish_feed
from tools.pki import issue, new_key, write_certificate, write_private_key
from tools.recipes import build_from_recipe

ROOTS = Path(__file__).resolve().parent.parent / "images" / "roots"
#: The rehearsals `--rehearsal` names; the first is the default (`make demo`).
REHEARSALS = ("february-2025", "july-2024")
STORE_COMPONENT = "e5f5f3fc-2eb5-4d1b-a650-b72364446807"  # images/recipes/certstore-*.toml
STAND_INS = {"baltimore": "Lab stand-in for Baltimore CyberTrust Root",
             "digicert": "Lab stand-in for DigiCert Global Root G2"}

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


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def root_file(kind: str) -> str:
    """The stand-in root's file name stem, which is also its name in the store."""
    return STAND_INS[kind].replace(" ", "_")


def lab_tls(folder: Path) -> dict[str, Path]:
    """A stand-in root per kind and a server certificate for 127.0.0.1 under each."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, name in STAND_INS.items():
        root_key, server_key = new_key(), new_key()
        root = issue(name, root_key, ca=True)
        server = issue("127.0.0.1", server_key, (root, root_key),
                       names=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        write_certificate(folder / f"{root_file(kind)}.pem", root)
        write_certificate(folder / f"{kind}-server.pem", server)
        write_private_key(folder / f"{kind}-server.key", server_key)
    return {kind: folder / f"{kind}-server" for kind in STAND_INS}


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


class _Hello(_Quiet):
    """Answers every GET with a greeting (the app's endpoint)."""

    def do_GET(self) -> None:
        body = b"hello from the demo endpoint\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


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


def https_server(cert_stem: Path) -> http.server.ThreadingHTTPServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(f"{cert_stem}.pem", f"{cert_stem}.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def feed_server(folder: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_Quiet, directory=str(folder))
    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)


def device(flash: Path, *argv: str) -> int:
    """Run one `fwmodel` command on the demo device, printing it first."""
    args = ["--hal", f"fake:{flash}", *argv]
    print(f"$ fwmodel {' '.join(args)}", flush=True)
    code = fwmodel.main(args)
    sys.stdout.flush()
    if code:
        print(f"(exit {code})", flush=True)
    return code


def rehearse(images: Path, work: Path, tls: dict[str, Path]) -> list[str]:
    """Run the story; return what did not happen as it should (empty: all did)."""
    flash, problems = work / "device.flash", []
    servers = {kind: https_server(stem) for kind, stem in tls.items()}
    with serving(servers["baltimore"]) as old, serving(servers["digicert"]) as kept, \
            serving(feed_server(work / "feeds")) as feed:
        say("provision a device with the pre-2025 store (three real roots + two lab stand-ins)")
        if device(flash, "provision", "--images", str(images),
                  "--store", str(work / "demo-store-before.imagepackage")):
            return ["provisioning failed"]
        device(flash, "status")
        say("both endpoints work before the update")
        for port in (old, kept):
            if device(flash, "connect", f"127.0.0.1:{port}"):
                problems.append(f"127.0.0.1:{port} failed before the update")
        say("the Retail feed publishes the February 2025 store; an app defers 120 minutes")
        if device(flash, "update", "--feed", f"http://127.0.0.1:{feed}/", "--channel",
                  "Retail", "--defer", "120"):
            return [*problems, "the update failed"]
        device(flash, "status")
        say("after the reboot: the Baltimore-style endpoint fails, the other still works")
        if device(flash, "connect", f"127.0.0.1:{old}") == 0:
            problems.append("the Baltimore-style endpoint still works after the update")
        if device(flash, "connect", f"127.0.0.1:{kept}"):
            problems.append("the DigiCert-style endpoint broke")
    return problems


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    top.add_argument("--images", type=Path, default=Path("images/build"))
    top.add_argument("--rehearsal", choices=REHEARSALS, default=REHEARSALS[0],
                     help="which update to rehearse (default: %(default)s)")
    args = top.parse_args(argv)
    images: Path = args.images.resolve()

    def body() -> int:
        if not (images / "keys" / "root.hash").exists() or args.rehearsal != REHEARSALS[0]:
            build_all(images)  # the July 2024 feeds are newer than some build folders
        if args.rehearsal == "july-2024":
            from tools.demo_july import main_july  # it uses this module's helpers

            return main_july(images)
        work = images / "demo"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        tls = lab_tls(work / "tls")
        build_demo_images(images, work)
        problems = rehearse(images, work, tls)
        say("done: " + ("the rehearsal went as February 2025 did" if not problems
                        else "; ".join(problems)))
        print("servers stopped; the device's flash is kept in", work / "device.flash")
        return 1 if problems else 0

    return run_guarded("demo", body)


if __name__ == "__main__":
    sys.exit(main())
