"""`fwmodel certstore`: the app certificate store (Applibs CertStore), as the device REST API
and `az sphere device certificate` manage it: install, list, show, delete, move, space."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from firmware_model.cli import render
from firmware_model.cli.commands import Subparsers, on_device
from firmware_model.device.app_certstore import (
    AVAILABLE_WHEN_EMPTY,
    CAPACITY,
    RESERVED,
    AppCertStore,
    CertKind,
)
from firmware_model.device.model import Device
from policy.cli import ExitCode, epilog
from policy.errors import UsageError
from policy.files import read_regular
from policy.text import counted

EPILOG = epilog({
    ExitCode.REFUSED: "certstore: ENOENT, no certificate with that identifier; ENOSPC, not "
                      "enough space; a device that does not boot",
    ExitCode.BAD_INPUT: "certstore: EINVAL or ERANGE, an identifier, certificate, key or "
                        "password the store cannot take; a file that cannot be read; no "
                        "device at FLASH",
}, codes=(ExitCode.OK, ExitCode.REFUSED, ExitCode.BAD_INPUT, ExitCode.HARDWARE, ExitCode.BUSY,
          ExitCode.INTERRUPTED),
   extra="a refusal is one line naming the errno (fwmodel: error: certstore: ENOSPC: ...) and "
         "leaves the store as it was.")


def register(commands: Subparsers) -> None:
    p = commands.add_parser(
        "certstore", help="the app certificate store (Applibs CertStore, 24 KiB; not the OS "
                          "trusted root store)",
        description="The app certificate store that apps (Applibs CertStore) and the device "
                    "REST API manage: 24 KiB in all, at most 8192 bytes a certificate, "
                    "identifiers of 1-16 characters from A-Z a-z 0-9 . - _, one identifier "
                    "space (installing under a taken identifier replaces its certificate).",
        epilog=EPILOG)
    p.set_defaults(interrupted_state=interrupted_state)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = actions.add_parser("install", help="install a root CA, or a client certificate "
                                 "with --client-key", epilog=EPILOG)
    install.add_argument("id", metavar="ID")
    install.add_argument("file", type=Path, metavar="PEM_OR_DER_FILE")
    install.add_argument("--client-key", type=Path, metavar="KEY",
                         help="the certificate's private key (PEM or DER): a client certificate")
    install.add_argument("--password-file", type=Path, metavar="F",
                         help="the key's password (the file's bytes, one final newline dropped)")
    on_device(install, run_install)
    listing = actions.add_parser("list", help="every certificate, in index order", epilog=EPILOG)
    listing.add_argument("--json", action="store_true")
    on_device(listing, run_list)
    show = actions.add_parser("show", help="one certificate's names and dates", epilog=EPILOG)
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true")
    on_device(show, run_show)
    delete = actions.add_parser("delete", help="delete a certificate", epilog=EPILOG)
    delete.add_argument("id", metavar="ID")
    on_device(delete, run_delete)
    move = actions.add_parser("move", help="move a certificate to another identifier "
                              "(replacing what that holds), atomically", epilog=EPILOG)
    move.add_argument("source", metavar="SRC")
    move.add_argument("destination", metavar="DST")
    on_device(move, run_move)
    space = actions.add_parser("space", help="bytes available", epilog=EPILOG)
    space.add_argument("--json", action="store_true")
    on_device(space, run_space)


def interrupted_state(device: Device, _before: object) -> str:
    """What an interrupted certstore command left: a cut is a power cut, and the store is
    committed whole, so it holds what it held before the command or what the command made."""
    identifiers = device.app_store.identifiers()
    listed = f": {', '.join(identifiers)}" if identifiers else ""
    return (f"the app certificate store is whole, as before the command or as it made it "
            f"({counted(len(identifiers), 'certificate')}{listed})")


def _store(device: Device) -> AppCertStore:
    device.start()  # the store is the OS's: a device that does not boot does not serve it
    return device.app_store


def read_password(path: Path) -> bytes:
    """The bytes of a password file without one final newline (\\n or \\r\\n)."""
    data = read_regular(path)
    for ending in (b"\r\n", b"\n"):
        if data.endswith(ending):
            return data[: -len(ending)]
    return data


def _replacing(kind: CertKind | None) -> str:
    return "" if kind is None else f", replacing a {kind.value} certificate"


def run_install(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    if args.password_file is not None and args.client_key is None:
        raise UsageError("--password-file is the password of --client-key: give both")
    certificate = read_regular(Path(args.file))
    key = read_regular(Path(args.client_key)) if args.client_key else None
    password = read_password(args.password_file) if args.password_file else None
    store = _store(device)
    if key is None:
        replaced = store.install_root_ca(args.id, certificate)
    else:
        replaced = store.install_client(args.id, certificate, key, password)
    info = store.info(args.id)
    out.write(f"installed {info.kind.value} certificate {args.id} ({info.size} bytes"
              f"{_replacing(replaced)}); {store.available_space()} bytes available\n")
    return 0


def run_list(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    store = _store(device)
    entries, free = store.listing()
    if args.json:
        render.print_json({"certificates": [info.to_json() for info in entries],
                           "available_space": free}, out)
        return 0
    lines = render.app_cert_lines([info.to_json() for info in entries])
    lines.append(f"{counted(len(entries), 'certificate')}, {free} bytes available")
    out.write("\n".join(lines) + "\n")
    return 0


def run_show(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    info = _store(device).info(args.id)
    if args.json:
        render.print_json(info.to_json(), out)
        return 0
    fields = info.to_json()
    out.write("".join(f"{key.replace('_', ' ')}: {value}\n" for key, value in fields.items()))
    return 0


def run_delete(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    store = _store(device)
    kind = store.delete(args.id)
    out.write(f"deleted {kind.value} certificate {args.id}; {store.available_space()} bytes "
              "available\n")
    return 0


def run_move(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    store = _store(device)
    replaced = store.move(args.source, args.destination)
    kind = store.info(args.destination).kind
    out.write(f"moved {kind.value} certificate {args.source} to {args.destination}"
              f"{_replacing(replaced)}\n")
    return 0


def run_space(device: Device, args: argparse.Namespace, out: TextIO) -> int:
    free = _store(device).available_space()
    if args.json:
        render.print_json({"available_space": free, "used": AVAILABLE_WHEN_EMPTY - free,
                           "available_when_empty": AVAILABLE_WHEN_EMPTY, "capacity": CAPACITY,
                           "reserved": RESERVED}, out)
        return 0
    out.write(f"{free} bytes available ({AVAILABLE_WHEN_EMPTY - free} used; an empty store has "
              f"{AVAILABLE_WHEN_EMPTY}: {CAPACITY} bytes less {RESERVED} reserved)\n")
    return 0
