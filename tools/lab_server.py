"""Serve a named HTTPS endpoint on 127.0.0.1 whose certificate chains to a lab root.

    python tools/lab_server.py NAME [--keys DIR] [--port PORT] [--address ADDR] [--json]

Also installed as the console script `lab-server`. NAME is a host name (`api.lab.test`) or an
IP address; the server's certificate is issued for it, at start, by the root of the lab PKI in
DIR (`imagetool keygen`; default images/build/keys, made by `make images`): `DIR/root.pem` is
the root a device's store must hold for the endpoint to verify. Nobody can sign with a real
root, so lab servers stand in for real endpoints this way. It listens on 127.0.0.1 (or another
loopback address: --address; any other is refused), on PORT (default: a free one), and answers
every GET with a one-line greeting.

The first line on stdout says how to reach it: address and port, the root to trust, and the
`fwmodel connect` and `audit-endpoints --resolve` command lines that do (with --json the same
as one JSON object). Then one line per connection (a handshake the client refused included).
It runs until Ctrl-C or SIGTERM, then stops and exits 0. The leaf's key lives in memory only.
"""

from __future__ import annotations

import argparse
import http.server
import json
import shlex
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from firmware_model.image.signing import Signer
from policy.cli import ExitCode, OneLineParser, epilog, run_guarded
from policy.errors import UsageError
from policy.https import LoopbackHttpsServer
from policy.interrupts import interrupts_ignored
from policy.network import host_name, loopback_ip
from tools.pki import ROOT, general_name, issue, load_signer, new_key

PROG = "lab-server"
DEFAULT_KEYS = Path("images/build/keys")
#: How long stopping waits for connections in progress to finish (and say how they went).
DRAIN_TIMEOUT = 2.0
EPILOG = epilog({ExitCode.OK: "stopped by Ctrl-C or SIGTERM once serving",
                 ExitCode.BAD_INPUT: "also an address off the loopback interface, a port in "
                                     "use, a NAME that is no host name, a keys folder without "
                                     "a lab PKI"},
                codes=[ExitCode.OK, ExitCode.BAD_INPUT],
                extra="(Ctrl-C while it is still starting, before its first line, is 130.)")


def endpoint_name(text: str) -> str:
    """NAME as a certificate can carry it: an IP address or a host name (UsageError)."""
    return host_name(text)


def listen_address(text: str) -> str:
    """A loopback IP address to listen on; UsageError for anything else."""
    return loopback_ip(text, "--address", "the lab server")


def server_context(name: str, root: Signer) -> ssl.SSLContext:
    """A TLS server context with a fresh key and a certificate for `name` issued by `root`
    (loaded through a private temporary folder, removed at once)."""
    key = new_key()
    leaf = issue(name, key, (root.certificate, root.key), names=[general_name(name)],
                 extended_usages=[ExtendedKeyUsageOID.SERVER_AUTH])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="lab-server-") as folder:
        chain, secret = Path(folder) / "chain.pem", Path(folder) / "leaf.key"
        chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        secret.touch(mode=0o600)
        secret.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        context.load_cert_chain(chain, secret)
    return context


_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        print(line, flush=True)


class _Greeting(http.server.BaseHTTPRequestHandler):
    """Answers every GET (and HEAD) with one line naming the endpoint."""

    server: LabServer

    def do_GET(self) -> None:
        body = f"hello from {self.server.name} (sphere-fwmodel lab server)\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log(f"{self.client_address[0]}:{self.client_address[1]} {format % args}")


class LabServer(LoopbackHttpsServer):
    """An HTTPS server that greets each client with its name (policy.https: each handshake
    in its connection's own thread); stopping it lets connections in progress end."""

    def __init__(self, address: tuple[str, int], name: str, context: ssl.SSLContext,
                 log: Callable[[str], None] = say) -> None:
        self.name = name
        self._active = 0
        self._idle = threading.Condition()
        super().__init__(address, _Greeting, context, log)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._idle:
            self._active += 1
        try:
            super().finish_request(request, client_address)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def server_close(self) -> None:
        """Stop listening; give connections in progress DRAIN_TIMEOUT seconds to end."""
        super().server_close()
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout=DRAIN_TIMEOUT)

    def serve_connection(self, tls: ssl.SSLSocket, client_address: Any) -> None:
        self.log(f"{client_address[0]}:{client_address[1]} handshake ok ({tls.version()})")
        super().serve_connection(tls, client_address)


@dataclass(frozen=True)
class Reach:
    """How to reach a running lab server (its first line)."""

    name: str
    address: str
    port: int
    root: Path
    root_subject: str

    @property
    def url(self) -> str:
        host = f"[{self.name}]" if ":" in self.name else self.name
        return f"https://{host}:{self.port}/"

    @property
    def connect(self) -> str:
        target = f"[{self.address}]" if ":" in self.address else self.address
        line = f"fwmodel --hal HAL connect {target}:{self.port}"  # HAL: the device to use
        return line if self.name == self.address else f"{line} --server-name {self.name}"

    @property
    def audit(self) -> str:
        host = f"[{self.name}]" if ":" in self.name else self.name
        line = f"audit-endpoints {host}:{self.port}"
        if self.name != self.address:
            address = f"[{self.address}]" if ":" in self.address else self.address
            line += f" --resolve {self.name}:{self.port}:{address}"
        return f"{line} --before STORE --after STORE"

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "address": self.address, "port": self.port,
                "url": self.url, "root": str(self.root),
                "root_subject": self.root_subject, "connect": self.connect,
                "audit": self.audit}

    def line(self) -> str:
        return (f"serving {self.url} on {self.address} port {self.port}; "
                f"trust {shlex.quote(str(self.root))} ({self.root_subject}); "
                f"connect: {self.connect}; audit: {self.audit}")


def bind(address: str, port: int, name: str, context: ssl.SSLContext,
         log: Callable[[str], None] = say) -> LabServer:
    """A LabServer listening on `address` and `port`, saying how each connection went with
    `log` (UsageError if it cannot listen there)."""
    try:
        return LabServer((address, port), name, context, log)
    except OSError as error:
        raise UsageError(f"cannot listen on {address} port {port}: "
                         f"{error.strerror or error}") from None


def serve(args: argparse.Namespace) -> int:
    name, address = endpoint_name(args.name), listen_address(args.address)
    keys: Path = args.keys
    if not (keys / f"{ROOT}.key").exists():
        raise UsageError(f"{keys} holds no lab PKI ({ROOT}.key, {ROOT}.pem): make one with "
                         "`imagetool keygen --out DIR`, or `make images` for images/build/keys")
    root = load_signer(keys / f"{ROOT}.key", keys / f"{ROOT}.pem")
    server = bind(address, args.port, name, server_context(name, root))
    reach = Reach(name, address, int(server.server_address[1]), keys / f"{ROOT}.pem",
                  root.certificate.subject.rfc4514_string())
    try:
        say(json.dumps(reach.to_json()) if args.json else reach.line())
        say("stop with Ctrl-C (or SIGTERM)")
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        with interrupts_ignored():  # a second Ctrl-C while stopping
            server.server_close()
    say("stopped")
    return 0


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(prog=PROG, description=__doc__, epilog=EPILOG)
    top.add_argument("name", metavar="NAME", help="the endpoint's host name (or IP address)")
    top.add_argument("--keys", type=Path, default=DEFAULT_KEYS, metavar="DIR",
                     help="the lab PKI whose root issues the certificate (default: %(default)s)")
    top.add_argument("--port", type=int, default=0, help="default: a free port")
    top.add_argument("--address", default="127.0.0.1",
                     help="a loopback address to listen on (default: %(default)s)")
    top.add_argument("--json", action="store_true", help="the first line as a JSON object")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 0 <= args.port < 65536:
        parser().error(f"--port {args.port}: 0..65535")
    return run_guarded(PROG, lambda: serve(args))


if __name__ == "__main__":
    sys.exit(main())
