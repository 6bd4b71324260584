"""What HTTPS and JSON cost: the device REST API driven by Microsoft's client, against the same
operations called in this process.

    .venv/bin/python -m bench.api [--requests N] [--cycles N]

Builds the project's images into a temporary folder, provisions two identical software devices
on flash files (pre-2025 store), serves one with `fwmodel serve-api` (a process of its own) and
opens the other here with `api.service.DeviceApi`, the object the server calls.

1. `status`: requests per second through the API (Microsoft's client, azuresphere-device-api
   1.1.1 in `.venv-api`, one kept-alive HTTPS connection: `device.get_device_status`) against
   `DeviceApi.status()` in this process. Each side: the best of batches of 20 calls (the first
   batch, with the TLS handshake, is dropped).
2. a store update: `stage` + `install` of a store image (`sideload.stage_image` +
   `sideload.install_images`, against `DeviceApi.stage` + `DeviceApi.install`), each cycle with
   a new store image of its own (same roots and security version, a new image GUID) and a
   restart after it (untimed: the next stage needs it). Each side: the best cycle.

The client's own time per call is measured inside its process around each call (Python's
`time.perf_counter`), so starting that process is not counted. Every figure is measured in this
run; the ratios (API time over in-process time) are what to read. Exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.timing import per_op
from firmware_model.api.service import DeviceApi
from firmware_model.cli.fwmodel import main as fwmodel
from firmware_model.device.model import Device
from firmware_model.image.build import build_package
from firmware_model.image.certstore import build_store_payload, read_store_payload
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from hal.soft.files import device_files
from hal.soft.machine import SoftwareMachine
from tests.oracle.apiserve import Served
from tests.oracle.apivenv import ClientUnavailable, drive, ensure_api_venv
from tools.build_images import build_all
from tools.pki import IMAGE_SIGNING, LabPki

BATCH = 20


def store_images(build: Path, count: int) -> list[Path]:
    """`count` store images like the February 2025 one, each with an image GUID of its own."""
    roots = read_store_payload(parse_package(
        (build / "certstore-2025-02.imagepackage").read_bytes()).payload)
    signer = LabPki(build / "keys").signer(IMAGE_SIGNING)
    component = parse_package((build / "certstore-2024.imagepackage").read_bytes()).component_id
    paths = []
    for index in range(count):
        path = build / f"bench-store-{index}.imagepackage"
        path.write_bytes(build_package(
            build_store_payload(roots), image_type=ImageType.UpdateCertStore,
            component_id=component, image_id=uuid.uuid4(), signer=signer,
            name=f"bench-store-{index}", security_version=2))
        paths.append(path)
    return paths


def provision(build: Path, folder: Path) -> Path:
    folder.mkdir()
    flash = folder / "dev.flash"
    with contextlib.redirect_stdout(io.StringIO()):
        code = fwmodel(["--hal", f"fake:{flash}", "provision", "--images", str(build)])
    if code != 0:
        raise SystemExit("bench.api: provisioning failed")
    return flash


def copy_device(flash: Path, folder: Path) -> Path:
    folder.mkdir()
    for path in device_files(flash):
        if path.exists():
            shutil.copy(path, folder / path.name)
    return folder / flash.name


def best_batch(seconds: Sequence[float]) -> float:
    """The best mean of consecutive batches of BATCH calls, the first batch dropped."""
    batches = [seconds[i:i + BATCH] for i in range(BATCH, len(seconds) - BATCH + 1, BATCH)]
    return min(statistics.fmean(batch) for batch in batches)


def through_the_client(python: Path, served: Served, requests: int,
                       cycles: Sequence[Path]) -> tuple[float, float]:
    """Seconds per `status` and per stage+install, through Microsoft's client."""
    results = drive(python, served.server, [["device.get_device_status"]] * (requests + BATCH))
    status = best_batch([r["seconds"] for r in results if "ok" in r])
    calls: list[list[Any]] = []
    for image in cycles:
        calls += [["sideload.stage_image", str(image)], ["sideload.install_images"],
                  ["device.restart_device"]]
    results = drive(python, served.server, calls, timeout=600)
    failed = [r for r in results if "ok" not in r]
    if failed:
        raise SystemExit(f"bench.api: the client failed: {failed[0]}")
    update = min(results[i]["seconds"] + results[i + 1]["seconds"]
                 for i in range(0, len(results), 3))
    return status, update


def in_process(flash: Path, budget: float, cycles: Sequence[Path]) -> tuple[float, float]:
    """Seconds per `status` and per stage+install, calling DeviceApi here."""
    with SoftwareMachine(flash, keep_clock=True) as machine:
        device = Device(machine)
        device.boot()
        api = DeviceApi(device)
        status = per_op({"status": api.status}, budget)["status"]
        best = float("inf")
        for image in cycles:
            data = image.read_bytes()
            started = time.perf_counter()
            api.stage(data)
            api.install()
            best = min(best, time.perf_counter() - started)
            api.restart()
    return status, best


def line(what: str, api: float, here: float) -> str:
    return (f"{what:<16} API {1 / api:9.1f}/s ({api * 1e3:7.3f} ms)   in-process "
            f"{1 / here:10.1f}/s ({here * 1e3:7.3f} ms)   API/in-process {api / here:7.1f}x")


def run(requests: int, cycles: int, budget: float) -> list[str]:
    try:
        python = ensure_api_venv()
    except ClientUnavailable as error:
        raise SystemExit(f"bench.api: {error}") from None
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        build = Path(tmp) / "build"
        build_all(build)
        images = store_images(build, cycles)
        flash = provision(build, Path(tmp) / "served")
        here_flash = copy_device(flash, Path(tmp) / "here")
        served = Served.start(f"fake:{flash}", flash.parent)
        try:
            api_status, api_update = through_the_client(python, served, requests, images)
        finally:
            served.stop()
        here_status, here_update = in_process(here_flash, budget, images)
    return [f"device REST API (fwmodel serve-api, azuresphere-device-api 1.1.1, HTTPS on "
            f"127.0.0.1) against DeviceApi in this process; {requests} status requests, "
            f"{cycles} store updates (best of each)",
            line("status", api_status, here_status),
            line("stage+install", api_update, here_update)]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--requests", type=int, default=400, help="status requests (default 400)")
    top.add_argument("--cycles", type=int, default=20, help="store updates (default 20)")
    top.add_argument("--budget", type=float, default=2.0,
                     help="seconds for the in-process status timing (default 2)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.requests < 2 * BATCH or args.cycles < 1:
        parser().error(f"--requests must be at least {2 * BATCH}, --cycles at least 1")
    report: Callable[[str], None] = print
    for text in run(args.requests, args.cycles, args.budget):
        report(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
