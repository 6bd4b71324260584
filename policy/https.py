"""An HTTPS server on loopback whose handshakes run in each connection's own thread.

`ThreadingHTTPServer` with an `SSLContext` wrapped around its listening socket would run every
TLS handshake in the accepting thread: one client that connects and says nothing would hold up
all the others. Here the accepting thread only accepts; the handshake (bounded by
HANDSHAKE_TIMEOUT) and the requests run in the connection's thread, and a failed handshake or a
dropped connection is one line of the server's log, never a traceback. Used by the device REST
API (`fwmodel serve-api`) and the lab HTTPS servers (`lab-server`).
"""

from __future__ import annotations

import http.server
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Any

from policy.errors import UsageError
from policy.network import is_loopback

#: How long a client may take to finish its TLS handshake.
HANDSHAKE_TIMEOUT = 10.0

Log = Callable[[str], None]


class LoopbackHttpsServer(http.server.ThreadingHTTPServer):
    """Serves `handler` over TLS (`context`) on a loopback address; see the module doc.
    Subclasses may override `serve_connection` (what happens once the handshake is done)."""

    def __init__(self, address: tuple[str, int], handler: type[http.server.BaseHTTPRequestHandler],
                 context: ssl.SSLContext, log: Log) -> None:
        if not is_loopback(address[0]):
            raise UsageError(f"{address[0]}: not a loopback address (only loopback is served)")
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.context, self.log, self._handler = context, log, handler
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        peer = f"{client_address[0]}:{client_address[1]}"
        request.settimeout(HANDSHAKE_TIMEOUT)
        # an answer is written as headers, then body: without this, Nagle's algorithm holds the
        # body back until the client's delayed acknowledgement (40 ms a request on Linux)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            reason = getattr(error, "reason", None) or error.strerror or type(error).__name__
            self.log(f"{peer} handshake failed: {reason}")
            return
        try:
            self.serve_connection(tls, client_address)
        except OSError as error:
            self.log(f"{peer} connection dropped: {error.strerror or type(error).__name__}")
        finally:
            tls.close()

    def serve_connection(self, tls: ssl.SSLSocket, client_address: Any) -> None:
        """Answer the requests of one connection (its handshake done)."""
        self._handler(tls, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.log(f"{client_address[0]}:{client_address[1]} request failed: "
                 f"{type(sys.exc_info()[1]).__name__}")
