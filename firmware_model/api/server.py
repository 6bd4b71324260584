"""The device REST API over HTTPS on loopback: Python's `http.server` and `ssl`.

    serve(device, "127.0.0.1", 0, sys.stdout)   # until Ctrl-C or SIGTERM; returns 0

The first line on `out` is `https://ADDRESS:PORT ca=PATH` (PATH: this run's CA certificate,
`pki.ServerIdentity`), then one line per request (`127.0.0.1:50522 GET /status 200`, with the
reason of a refusal) and `stopped` at the end. Each connection gets a thread of its own (its
TLS handshake included, so a client that stalls holds up nobody) and may keep its connection
alive between requests (HTTP/1.1, as Microsoft's client does); requests reach the device one at
a time (`DeviceSession`). Every answer carries `REST-API-Version` and, but for 415 and 500, a
JSON body.

While it serves, the device's clock goes on at the host's pace: a software machine's clock is
virtual (it moves only when the device waits), so before each request the session lets the
time since the last one pass on it, and the uptime `status` reports grows as on a device. A
board whose clock is real needs nothing.

Stopping (Ctrl-C or SIGTERM): the server stops listening, waits for the request in progress
to finish (the device sees no cut), answers later requests on open connections 503, and
returns 0; the caller closes the device (its lock released, its clock saved).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, TextIO

from firmware_model.api.pki import ServerIdentity
from firmware_model.api.routes import Reply, Request, body_limit, dispatch, too_large
from firmware_model.api.service import REST_API_VERSION, DeviceApi
from firmware_model.device.model import Device
from firmware_model.errors import FwModelError
from hal.soft.clock import VirtualClock
from policy.errors import Failure, UsageError
from policy.https import LoopbackHttpsServer
from policy.interrupts import interrupts_ignored

#: How long a kept-alive connection may sit idle before the server closes it.
IDLE_TIMEOUT = 120.0
#: The most bytes of an over-long body read (and dropped) to answer it; beyond, the
#: connection is closed.
DRAIN_LIMIT = 64 * 1024 * 1024
#: How long, and how many bytes, a connection closed on an unread body is drained first.
LINGER_S, LINGER_BYTES = 1.0, 1024 * 1024


class DeviceSession:
    """The device as the server holds it: one request at a time, its clock kept moving (see
    module doc), and closed once the server stops."""

    def __init__(self, api: DeviceApi, host_clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        clock = api.device.machine.clock
        self._virtual = bool(getattr(clock, "virtual", isinstance(clock, VirtualClock)))
        self._host_clock = host_clock
        self._lock = threading.Lock()
        self._last = host_clock()
        self._closed = False

    @contextlib.contextmanager
    def use(self) -> Iterator[DeviceApi | None]:
        """The API, for one request (None once closed)."""
        with self._lock:
            if self._closed:
                yield None
                return
            self._catch_up()
            yield self.api

    def close(self) -> None:
        """Wait for the request in progress; no other reaches the device afterwards."""
        with self._lock:
            if not self._closed:
                self._closed = True
                with contextlib.suppress(Failure):
                    self._catch_up()

    def _catch_up(self) -> None:
        now = self._host_clock()
        elapsed, self._last = now - self._last, now
        if self._virtual and elapsed > 0:
            self.api.device.machine.clock.sleep(elapsed)


Log = Callable[[str], None]


class _Handler(http.server.BaseHTTPRequestHandler):
    """One connection's requests (see module doc)."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    server: ApiServer
    unread_body = False  # set when it closes with a body left unread (see ApiServer._linger)

    def do_GET(self) -> None:
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        reply = self._answer()
        self._send(reply)
        note = f" ({reply.note})" if reply.note else ""
        self.server.log(f"{peer} {self.command} {self.path} {int(reply.status)}{note}")
        if reply.after is not None:  # once answered (a restart ends the device's session)
            self._after(reply.after)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _answer(self) -> Reply:
        if "Transfer-Encoding" in self.headers:
            self.close_connection = self.unread_body = True
            return Reply(HTTPStatus.LENGTH_REQUIRED, None, note="a body without Content-Length")
        length = _content_length(self.headers.get_all("Content-Length") or [])
        if length < 0:
            self.close_connection = True
            return Reply(HTTPStatus.BAD_REQUEST, None, note="a Content-Length that is no length")
        limit = body_limit(self.server.session.api, self.command, self.path)
        if length > limit:
            self._drop(length)
            return too_large(length, limit)
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return Reply(HTTPStatus.BAD_REQUEST, None, note="the body was cut short")
        return self._on_device(Request(self.command, self.path,
                                       self.headers.get("Content-Type"), body))

    def _drop(self, length: int) -> None:
        if length > DRAIN_LIMIT:
            self.close_connection = self.unread_body = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def _on_device(self, request: Request) -> Reply:
        with self.server.session.use() as api:
            if api is None:
                self.close_connection = True
                return Reply(HTTPStatus.SERVICE_UNAVAILABLE, None, note="stopping")
            try:
                reply = dispatch(api, request)
            except (Failure, FwModelError) as error:
                return Reply(HTTPStatus.INTERNAL_SERVER_ERROR, None,
                             note=f"{type(error).__name__}: {' '.join(str(error).split())}")
            except Exception as error:  # a bug: answered 500, its traceback on stderr
                traceback.print_exc(file=sys.stderr)
                return Reply(HTTPStatus.INTERNAL_SERVER_ERROR, None,
                             note=f"internal error: {type(error).__name__}")
            return reply

    def _after(self, after: Callable[[], None]) -> None:
        with self.server.session.use() as api:
            if api is None:
                return
            try:
                after()
            except (Failure, FwModelError) as error:
                self.server.log(f"after {self.command} {self.path}: {type(error).__name__}: "
                                f"{' '.join(str(error).split())}")

    def _send(self, reply: Reply) -> None:
        body = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("REST-API-Version", REST_API_VERSION)
        if reply.body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def parse_request(self) -> bool:
        """http.server's parsing, without HTTP/0.9: a request line with no version (`GET
        /status`) would be answered with a bare body, no status line and no headers."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(HTTPStatus.BAD_REQUEST, "a request line without an HTTP version")
            return False
        return True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """http.server's own refusals (a request line or headers it cannot read, a method it
        does not know): the status and no body, as every refusal HTTP makes before a route is
        reached, with REST-API-Version like every answer (not http.server's HTML page), also
        when the request line was too garbled to say which HTTP it speaks."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # http.server would write no status line
            self.request_version = "HTTP/1.1"
        self.server.log(f"{self.client_address[0]}:{self.client_address[1]} {code} "
                        f"{message or HTTPStatus(code).phrase}")
        self._send(Reply(HTTPStatus(code), None))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Each request is logged once, with its reason (`do_GET`)."""

    def log_message(self, format: str, *args: Any) -> None:
        """http.server's own lines (malformed requests): to the server's log."""
        self.server.log(f"{self.client_address[0]}:{self.client_address[1]} {format % args}")


class ApiServer(LoopbackHttpsServer):
    """An HTTPS server of `session`'s API (see module doc)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], session: DeviceSession,
                 context: ssl.SSLContext, log: Log) -> None:
        self.session = session
        super().__init__(address, _Handler, context, log)

    def serve_connection(self, tls: ssl.SSLSocket, client_address: Any) -> None:
        if _Handler(tls, client_address, self).unread_body:
            _linger(tls)


def _content_length(values: list[str]) -> int:
    """The body's length from a request's Content-Length headers: 0 without one, -1 (no
    length) for anything but one run of ASCII digits, or several headers that disagree."""
    if not values:
        return 0
    if len(set(values)) > 1 or not re.fullmatch(r"[0-9]{1,19}", values[0].strip()):
        return -1
    return int(values[0])


def _linger(tls: ssl.SSLSocket) -> None:
    """Read (and drop) what the client still sends, for a moment, before closing: closing on
    unread bytes resets the connection, and the client may lose the answer it was sent."""
    tls.settimeout(LINGER_S)
    left = LINGER_BYTES
    with contextlib.suppress(OSError):
        while left > 0 and (chunk := tls.recv(min(left, 1 << 16))):
            left -= len(chunk)


def url_of(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def serve(device: Device, address: str, port: int, out: TextIO) -> int:
    """Serve `device`'s REST API on `address` (loopback: the caller checks) and `port` (0: a
    free one) until Ctrl-C or SIGTERM; 0. UsageError if it cannot listen there."""
    printing = threading.Lock()

    def say(line: str) -> None:
        with printing:
            out.write(line + "\n")
            out.flush()

    session = DeviceSession(DeviceApi(device))
    identity = ServerIdentity(address)
    try:
        try:
            server = ApiServer((address, port), session, identity.context, say)
        except OSError as error:
            raise UsageError(f"cannot listen on {address} port {port}: "
                             f"{error.strerror or error}") from None
        try:
            url = url_of(address, int(server.server_address[1]))
            say(f"{url} ca={identity.ca_path}")
            device.log(f"[api] serving the device REST API on {url}")
            server.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            with interrupts_ignored():
                server.server_close()
                session.close()
    finally:
        identity.close()
    say("stopped")
    return 0
