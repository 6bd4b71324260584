"""The device REST API over HTTPS, served in this process on 127.0.0.1 and asked with Python's
own `http.client`: the certificate chain and names a client checks, the REST-API-Version on
every answer, kept-alive connections, bodies the server will not take, the device's clock
going on while it serves, and what the CA's folder holds."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
from cryptography import x509

from firmware_model.api import codes
from firmware_model.api.pki import DEVICE_HOST, ServerIdentity
from firmware_model.api.server import ApiServer, DeviceSession
from firmware_model.api.service import REST_API_VERSION, DeviceApi
from firmware_model.device.model import Device
from hal.soft.machine import SoftwareMachine
from tests.firmware_model.devicelab import Lab, small_device


class HostClock:
    """A host clock the test moves by hand (what the session reads to let device time pass)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def served(device_lab: Lab) -> Iterator[tuple[ApiServer, ServerIdentity, HostClock]]:
    device = small_device(device_lab)
    clock = HostClock()
    identity = ServerIdentity("127.0.0.1")
    server = ApiServer(("127.0.0.1", 0), DeviceSession(DeviceApi(device), clock),
                       identity.context, lambda line: None)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server, identity, clock
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        identity.close()


def connection(served: tuple[ApiServer, ServerIdentity, HostClock],
               name: str = "device.devices.sphere.azure.local") -> http.client.HTTPSConnection:
    server, identity, _ = served
    context = ssl.create_default_context(cafile=str(identity.ca_path))
    port = int(server.server_address[1])
    return HTTPSHostConnection("127.0.0.1", port, name, context)


class HTTPSHostConnection(http.client.HTTPSConnection):
    """Connects to an address, checks the certificate against `name` (as Microsoft's client
    asserts `*.devices.sphere.azure.local` while it connects to an IP address)."""

    def __init__(self, address: str, port: int, name: str, context: ssl.SSLContext) -> None:
        super().__init__(address, port, context=context, timeout=30)
        self._name = name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._name)  # type: ignore[attr-defined]


def ask(conn: http.client.HTTPSConnection, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response.status, dict(response.getheaders()), json.loads(data) if data else None


def test_the_certificate_names_the_device_host_and_chains_to_this_runs_ca(
        served: tuple[ApiServer, ServerIdentity, HostClock]) -> None:
    _, identity, _ = served
    names = identity.server.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert DEVICE_HOST in names.value.get_values_for_type(x509.DNSName)
    assert identity.server.issuer == identity.ca.subject
    for name in ("x.devices.sphere.azure.local", "127.0.0.1"):
        status, _, body = ask(connection(served, name), "GET", "/osversion")
        assert (status, body) == (200, {"osversion": "24.03"})
    with pytest.raises(ssl.SSLCertVerificationError):
        ask(connection(served, "example.com"), "GET", "/osversion")


def test_only_the_ca_certificate_is_left_in_its_folder(
        served: tuple[ApiServer, ServerIdentity, HostClock]) -> None:
    _, identity, _ = served
    assert [p.name for p in identity.ca_path.parent.iterdir()] == ["device-api-ca.pem"]
    assert b"PRIVATE KEY" not in identity.ca_path.read_bytes()
    assert identity.ca_path.parent.stat().st_mode & 0o077 == 0


def test_a_closed_identity_leaves_no_file() -> None:
    identity = ServerIdentity("::1")
    folder = identity.ca_path.parent
    identity.close()
    assert not folder.exists()


def test_every_answer_carries_the_rest_api_version_errors_included(
        served: tuple[ApiServer, ServerIdentity, HostClock]) -> None:
    conn = connection(served)
    for path, status in (("/status", 200), ("/wifi/scan", 404), ("/certstore/certs/none", 409)):
        got, headers, body = ask(conn, "GET", path)
        assert got == status and headers["REST-API-Version"] == REST_API_VERSION, body
    assert ask(conn, "GET", "/wifi/scan")[2] == {"error": codes.INVALID_URI}


def test_a_connection_is_kept_alive_between_requests(
        served: tuple[ApiServer, ServerIdentity, HostClock]) -> None:
    conn = connection(served)
    ask(conn, "GET", "/status")
    first = conn.sock
    ask(conn, "GET", "/images")
    assert conn.sock is first


def test_the_device_clock_goes_on_at_the_hosts_pace_while_it_serves(
        served: tuple[ApiServer, ServerIdentity, HostClock]) -> None:
    conn = connection(served)
    before = ask(conn, "GET", "/status")[2]["uptime"]
    served[2].now += 90.5
    assert ask(conn, "GET", "/status")[2]["uptime"] == before + 90


def test_an_image_larger_than_any_slot_is_too_large(
        served: tuple[ApiServer, ServerIdentity, HostClock]) -> None:
    conn = connection(served)
    status, _, body = ask(conn, "PUT", "/update/stage", b"\0" * (256 * 1024 + 1),
                          {"Content-Type": "application/octet-stream"})
    assert (status, body) == (400, {"error": codes.CONTENT_TOO_LARGE})
    assert ask(conn, "GET", "/osversion")[0] == 200  # the body was read: the connection goes on


def test_a_body_without_a_length_is_refused_and_the_connection_closed(
        served: tuple[ApiServer, ServerIdentity, HostClock]) -> None:
    conn = connection(served)
    conn.putrequest("PUT", "/update/stage")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Content-Type", "application/octet-stream")
    conn.endheaders()
    conn.send(b"5\r\nhello\r\n0\r\n\r\n")
    response = conn.getresponse()
    assert (response.status, response.getheader("Connection")) == (411, "close")


def test_a_head_request_is_a_route_the_model_does_not_have_and_gets_no_body(
        served: tuple[ApiServer, ServerIdentity, HostClock]) -> None:
    conn = connection(served)
    conn.request("HEAD", "/status")
    response = conn.getresponse()
    assert response.status == 404 and response.read() == b""
    assert response.getheader("REST-API-Version") == REST_API_VERSION


def test_a_stopped_session_answers_503(device_lab: Lab) -> None:
    device = small_device(device_lab)
    session = DeviceSession(DeviceApi(cast(Device, device)))
    session.close()
    with session.use() as api:
        assert api is None
    assert isinstance(device.machine, SoftwareMachine)


def raw_exchange(served: tuple[ApiServer, ServerIdentity, HostClock], request: bytes
                 ) -> tuple[str, dict[str, str], bytes]:
    """Send `request` as written (no client to tidy it) and read the answer to the end."""
    server, identity, _ = served
    context = ssl.create_default_context(cafile=str(identity.ca_path))
    sock = socket.create_connection(("127.0.0.1", int(server.server_address[1])), timeout=30)
    with context.wrap_socket(sock, server_hostname=DEVICE_HOST.replace("*", "x")) as tls:
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body


@pytest.mark.parametrize(("headers", "status"), [
    ([b"Content-Length: -5"], "400 Bad Request"),
    ([b"Content-Length: abc"], "400 Bad Request"),
    ([b"Content-Length: 5_0"], "400 Bad Request"),
    ([b"Content-Length: 3", b"Content-Length: 4"], "400 Bad Request"),
    ([b"X-Long: " + b"a" * 70_000], "431 Request Header Fields Too Large"),
    ([b"X-%d: a" % i for i in range(200)], "431 Request Header Fields Too Large"),
])
def test_a_request_http_cannot_frame_gets_its_status_no_page_and_the_api_version(
        served: tuple[ApiServer, ServerIdentity, HostClock], headers: list[bytes],
        status: str) -> None:
    request = (b"PUT /update/stage HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/octet-stream\r\n" + b"\r\n".join(headers) + b"\r\n\r\n")
    line, answer_headers, body = raw_exchange(served, request)
    assert line == f"HTTP/1.1 {status}"
    assert answer_headers["REST-API-Version"] == REST_API_VERSION
    assert answer_headers["Connection"] == "close"
    assert body == b""
    conn = connection(served)
    assert ask(conn, "GET", "/osversion")[0] == 200  # the server goes on serving


@pytest.mark.parametrize("line", [b"GARBAGE", b"GET", b"GET /status HTTP/1.1 extra",
                                  b"GET /status FOO/1.1", b"GET /status"])
def test_a_request_line_http_cannot_read_gets_400_with_a_status_line_and_the_version(
        served: tuple[ApiServer, ServerIdentity, HostClock], line: bytes) -> None:
    status, headers, body = raw_exchange(served, line + b"\r\n\r\n")
    assert status == "HTTP/1.1 400 Bad Request"  # never a bare HTTP/0.9 body
    assert headers["REST-API-Version"] == REST_API_VERSION and body == b""


def test_a_request_line_over_64_kib_gets_414(
        served: tuple[ApiServer, ServerIdentity, HostClock]) -> None:
    status, headers, _ = raw_exchange(served, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 414 Request-URI Too Long"
    assert headers["REST-API-Version"] == REST_API_VERSION
