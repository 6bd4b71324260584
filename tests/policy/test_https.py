"""policy.https: the loopback HTTPS server both HTTPS commands share."""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
import time

import pytest

from policy.errors import UsageError
from policy.https import LoopbackHttpsServer


class _Nothing(http.server.BaseHTTPRequestHandler):
    pass


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.35.2", "0.0.0.0", "::", "example.test"])
def test_a_server_on_an_address_that_is_not_loopback_is_refused_before_it_binds(
    host: str,
) -> None:
    with pytest.raises(UsageError, match="not a loopback address"):
        LoopbackHttpsServer((host, 0), _Nothing, ssl.create_default_context(), print)


def test_a_client_that_never_finishes_its_handshake_holds_up_nobody() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # no certificate: every handshake fails
    lines: list[str] = []
    server = LoopbackHttpsServer(("127.0.0.1", 0), _Nothing, context, lines.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with socket.create_connection(("127.0.0.1", port)):  # says nothing
            with socket.create_connection(("127.0.0.1", port)) as second:
                second.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not TLS at all
                second.settimeout(5)
                # dropped without waiting for the first (closed or reset, never a timeout)
                with contextlib.suppress(ConnectionResetError):
                    assert second.recv(100) == b""
            deadline = time.monotonic() + 5  # ssl closes the socket before the server logs
            while not lines and time.monotonic() < deadline:
                time.sleep(0.01)
            assert lines and "handshake failed" in lines[0]  # one line, not a traceback
    finally:
        server.shutdown()
        server.server_close()
