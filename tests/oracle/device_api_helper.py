"""Drive a device REST API with Microsoft's own client, `azuresphere-device-api` 1.1.1.

Run with the `.venv-api` python (the client pins requests==2.26.0), never imported by our code:

    .venv-api/bin/python tests/oracle/device_api_helper.py --device 127.0.0.1:PORT --ca CA.pem \
        < calls.json

stdin holds a JSON list of calls, each `["module.function", arg, ...]` of the client's public
modules (`device.get_device_status`, `sideload.stage_image`, ...). The client is pointed at the
server by its two module globals only, `utils._CURRENT_DEVICE_IP` (`--device`; without it the
client keeps its default, 192.168.35.2) and `utils._CERT_PATH` (`--ca`): nothing of its code is
patched. stdout is one JSON list, a result per call: `{"ok": VALUE, "seconds": S}` or
`{"error": {"type": "DeviceError", "message": ..., "causes": [...]}, "seconds": S}` (`causes`:
the messages down the exception's chain, so a refusal by the network guard shows).

It refuses to run (exit 3) unless the tests' network guard (tests/netguard/sitecustomize.py) is
loaded in this process: a call that misses the settings above must fail, not reach for a real
device's address.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

MODULES = ("app", "capabilities", "certificate", "device", "devices", "image", "manufacturing",
           "network", "sideload", "wifi")


def guard_loaded() -> bool:
    guard = sys.modules.get("sitecustomize")
    return guard is not None and hasattr(guard, "NonLoopbackError")


def causes(error: BaseException) -> list[str]:
    chain: list[str] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return chain


def call(name: str, args: list[Any]) -> dict[str, Any]:
    module_name, _, function_name = name.partition(".")
    if module_name not in MODULES or not function_name or function_name.startswith("_"):
        raise SystemExit(f"device_api_helper: {name!r} is not a public client call")
    module = importlib.import_module(f"azuresphere_device_api.{module_name}")
    started = time.perf_counter()
    try:
        value = getattr(module, function_name)(*args)
    except Exception as error:  # the client's exceptions are what the tests look at
        return {"error": {"type": type(error).__name__, "message": str(error),
                          "causes": causes(error)},
                "seconds": time.perf_counter() - started}
    if isinstance(value, bytes):
        value = {"bytes": len(value)}
    return {"ok": json.loads(json.dumps(dict(value) if hasattr(value, "items") else value,
                                        default=str)),
            "seconds": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", help="ADDRESS:PORT of the server (the client's "
                                         "_CURRENT_DEVICE_IP); default: the client's own")
    parser.add_argument("--ca", type=Path, help="the CA certificate to trust (_CERT_PATH)")
    args = parser.parse_args()
    if not guard_loaded():
        print("device_api_helper: the tests' network guard is not loaded (put tests/netguard "
              "on PYTHONPATH)", file=sys.stderr)
        return 3
    from azuresphere_device_api import utils

    if args.device:
        utils._CURRENT_DEVICE_IP = args.device
    if args.ca:
        utils._CERT_PATH = args.ca.absolute()
    calls = json.load(sys.stdin)
    json.dump([call(str(entry[0]), list(entry[1:])) for entry in calls], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
