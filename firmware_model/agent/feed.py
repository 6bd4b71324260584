"""Update feeds: where the agent fetches a channel's signed manifest and the images it lists.

A channel's folder holds `manifest.imagepackage` and each image as `<image GUID>.imagepackage`
(what `tools/build_images.py` lays out under `feeds/<Channel>/`). A feed location is a
directory or an http(s):// URL on the loopback interface; if its last path segment is a
channel name (or, for a directory, if it holds a manifest) it is that channel's folder, otherwise
the folder holding one folder per channel.

Every fetch names the most bytes it will take: a file or response over it is a SizeLimitError
(nothing more is read); and when it must be done by (a `time.monotonic()` deadline: the update
check's, `AgentSettings.check_deadline_s`), so a feed that trickles its bytes ends the check in
time. A missing file, an HTTP error, a refused or timed-out connection, a response cut short or
a deadline passed is a FeedError (exit 3: the next check tries again). A location that names no
feed at all (a folder that does not exist, a channel folder that is not there, a scheme other
than http/https/file, a host off the loopback interface) is a FeedLocationError: bad usage
(exit 2), nothing to retry. Fetching is the host-side edge of the model: the device state is
untouched by it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from firmware_model.errors import FeedError, FeedLocationError, SizeLimitError
from policy.files import open_regular, read_regular
from policy.network import LOOPBACK_HOSTS, is_loopback

CHANNELS = ("Retail", "RetailEval")
DEFAULT_CHANNEL = "Retail"
MANIFEST_NAME = "manifest.imagepackage"
FETCH_TIMEOUT = 10.0


def image_file_name(image_id: uuid.UUID) -> str:
    """The file name a feed serves an image under."""
    return f"{image_id}.imagepackage"


class Feed(Protocol):
    """A channel of an update feed."""

    @property
    def location(self) -> str:
        """Where the channel is (for messages)."""

    def fetch(self, name: str, limit: int, deadline: float | None = None) -> bytes:
        """The file `name`, at most `limit` bytes, by `deadline` (monotonic seconds; None: no
        deadline); SizeLimitError if larger, FeedError if absent, cut short or late."""


def _too_big(name: str, location: str, limit: int) -> SizeLimitError:
    return SizeLimitError(f"{name} from {location} is larger than its limit of {limit} bytes")


def _late(name: str, location: str) -> FeedError:
    return FeedError(f"feed {location}: the update check's deadline passed while fetching {name}")


def _check_deadline(deadline: float | None, name: str, location: str) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise _late(name, location)


@dataclass(frozen=True)
class DirectoryFeed:
    """A channel folder on the host's file system."""

    root: Path

    @property
    def location(self) -> str:
        return str(self.root)

    def fetch(self, name: str, limit: int, deadline: float | None = None) -> bytes:
        _check_deadline(deadline, name, self.location)
        path = self.root / name
        try:  # a FIFO or a device is refused, not waited on or read for ever
            with os.fdopen(open_regular(path), "rb") as handle:
                data = handle.read(limit + 1)
        except FileNotFoundError:
            raise FeedError(f"feed {self.root} has no {name}") from None
        except OSError as error:
            raise FeedError(f"feed {self.root}: cannot read {name} ({error.strerror})") from None
        if len(data) > limit:
            raise _too_big(name, self.location, limit)
        return data


_READ_PIECE = 64 * 1024


@dataclass(frozen=True)
class HttpFeed:
    """A channel folder served over HTTP(S) on the loopback interface. Each read waits at most
    `timeout` seconds, and no longer than the fetch's deadline allows."""

    base_url: str
    ssl_context: ssl.SSLContext | None = None
    timeout: float = FETCH_TIMEOUT

    @property
    def location(self) -> str:
        return self.base_url

    def fetch(self, name: str, limit: int, deadline: float | None = None) -> bytes:
        url = urllib.parse.urljoin(self.base_url.rstrip("/") + "/", name)
        parsed = urllib.parse.urlparse(url)
        connection = self._connection(parsed, deadline, name)
        cutoff = _Cutoff(deadline)
        try:
            data = self._get(connection, parsed, name, limit, deadline, cutoff)
        except FeedError:  # a response cut short: by the cutoff, if the deadline has passed
            if cutoff.passed(deadline):
                raise _late(name, self.location) from None
            raise
        except TimeoutError:
            if cutoff.passed(deadline):
                raise _late(name, self.location) from None
            raise FeedError(f"feed {url}: timed out after {self.timeout:g} s") from None
        except ssl.SSLCertVerificationError as error:
            raise FeedError(f"feed {url}: TLS failed (certificate verify failed: "
                            f"{error.verify_message or error.reason})") from None
        except (ssl.SSLError, http.client.HTTPException, OSError) as error:
            if cutoff.passed(deadline):  # the cutoff shut the socket in the middle of a read
                raise _late(name, self.location) from None
            what = f"TLS failed ({error.reason or error})" if isinstance(error, ssl.SSLError) \
                else f"cannot fetch ({error})"
            raise FeedError(f"feed {url}: {what}") from None
        finally:
            cutoff.cancel()
            connection.close()
        if cutoff.passed(deadline):  # what arrived before the cutoff is not the whole file
            raise _late(name, self.location)
        return data

    def _connection(self, parsed: urllib.parse.ParseResult, deadline: float | None,
                    name: str) -> http.client.HTTPConnection:
        timeout = self._wait(deadline, name)
        host, port = parsed.hostname or "127.0.0.1", parsed.port
        if parsed.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _wait(self, deadline: float | None, name: str) -> float:
        """How long the next read may wait: `timeout`, cut to what the deadline leaves."""
        if deadline is None:
            return self.timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise _late(name, self.location)
        return min(self.timeout, left)

    def _get(self, connection: http.client.HTTPConnection, parsed: urllib.parse.ParseResult,
             name: str, limit: int, deadline: float | None, cutoff: _Cutoff) -> bytes:
        connection.request("GET", parsed.path or "/", headers={"Connection": "close"})
        sock = connection.sock  # kept: the connection lets go of it once the response is read
        if sock is not None:
            cutoff.watch(sock)
        response = connection.getresponse()
        url = parsed.geturl()
        if response.status != 200:
            raise FeedError(f"feed {url}: HTTP {response.status} {response.reason}")
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_big(name, self.location, limit)
        data = bytearray()
        while len(data) <= limit:
            wait = self._wait(deadline, name)  # _late once the deadline has passed
            if sock is not None:
                sock.settimeout(wait)
            piece = response.read1(min(_READ_PIECE, limit + 1 - len(data)))
            if not piece:
                break
            data += piece
        if len(data) > limit:
            raise _too_big(name, self.location, limit)
        if declared is not None and declared.isdigit() and len(data) < int(declared):
            raise FeedError(f"feed {url}: response cut short after {len(data)} bytes")
        return bytes(data)


class _Cutoff:
    """Shuts a fetch's socket down the moment the check's deadline passes, whatever read is in
    progress: a socket timeout bounds one read only, and a feed that sends a byte just in time
    (the status line or the headers a byte a second) would pass every one of them."""

    def __init__(self, deadline: float | None) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._fired = False
        self._timer: threading.Timer | None = None
        if deadline is not None:
            self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down at the deadline (at once if it has passed)."""
        with self._lock:
            self._sock = sock
            if self._fired:
                _shut(sock)

    def passed(self, deadline: float | None) -> bool:
        """Whether the deadline has passed (the cutoff fired, or the clock says so)."""
        return self._fired or (deadline is not None and time.monotonic() >= deadline - 0.001)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            if self._sock is not None:
                _shut(self._sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@dataclass
class MemoryFeed:
    """A channel held in memory: what the sweep and tests serve (files by name)."""

    files: Mapping[str, bytes]
    name: str = "memory"
    fetched: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        return self.name

    def fetch(self, name: str, limit: int, deadline: float | None = None) -> bytes:
        _check_deadline(deadline, name, self.location)
        self.fetched.append(name)
        if name not in self.files:
            raise FeedError(f"feed {self.name} has no {name}")
        data = self.files[name]
        if len(data) > limit:
            raise _too_big(name, self.location, limit)
        return data

    @classmethod
    def from_directory(cls, root: Path) -> MemoryFeed:
        """Every `*.imagepackage` of a channel folder, read once."""
        files = {path.name: read_regular(path) for path in sorted(root.glob("*.imagepackage"))}
        if MANIFEST_NAME not in files:
            raise FeedError(f"feed {root} has no {MANIFEST_NAME}")
        return cls(files, str(root))


def channel_location(location: str, channel: str | None) -> str:
    """The channel folder for a feed `location`: itself if it ends in a channel name."""
    if channel is not None and channel not in CHANNELS:
        raise FeedLocationError(
            f"unknown channel {channel!r}: expected one of {', '.join(CHANNELS)}")
    last = location.rstrip("/").rsplit("/", 1)[-1]
    if last in CHANNELS:
        if channel is not None and channel != last:
            raise FeedLocationError(f"feed {location} is the {last} channel, not {channel}")
        return location
    return location.rstrip("/") + "/" + (channel or DEFAULT_CHANNEL)


def open_feed(
    location: str,
    channel: str | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = FETCH_TIMEOUT,
) -> Feed:
    """The channel `channel` (default Retail) of the feed at `location` (directory or URL).

    FeedLocationError (bad usage) for a location that names no feed: a URL off the loopback
    interface or with a scheme other than http/https/file, a folder that does not exist, a
    feed folder without the channel's folder.
    """
    folder = channel_location(location, channel)
    parsed = urllib.parse.urlparse(folder)
    if parsed.scheme in ("http", "https"):
        if not is_loopback(parsed.hostname or ""):
            raise FeedLocationError(f"feed {location}: the model fetches from loopback hosts "
                                    f"only ({', '.join(LOOPBACK_HOSTS)})")
        return HttpFeed(folder, ssl_context if parsed.scheme == "https" else None, timeout)
    if parsed.scheme not in ("", "file"):
        raise FeedLocationError(f"feed {location}: unsupported scheme {parsed.scheme!r} "
                                "(a folder, file:, http: or https: on loopback)")
    given = Path(urllib.parse.urlparse(location).path if parsed.scheme == "file" else location)
    if (given / MANIFEST_NAME).is_file():
        return DirectoryFeed(given)  # a channel folder under a name of its own
    if not given.is_dir():
        raise FeedLocationError(f"no feed at {given}: not a folder")
    channel_folder = Path(parsed.path if parsed.scheme == "file" else folder)
    if not channel_folder.is_dir():
        raise FeedLocationError(f"feed {given} has no {channel_folder.name} channel folder")
    return DirectoryFeed(channel_folder)
