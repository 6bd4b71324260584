"""Update feeds: where the agent fetches a channel's signed manifest and the images it lists.

A channel's folder holds `manifest.imagepackage` and each image as `<image GUID>.imagepackage`
(what `tools/build_images.py` lays out under `feeds/<Channel>/`). A feed location is a
directory or an http(s):// URL on the loopback interface; if its last path segment is a
channel name (or, for a directory, if it holds a manifest) it is that channel's folder, otherwise
the folder holding one folder per channel.

Every fetch names the most bytes it will take: a file or response over it is a SizeLimitError
(nothing more is read); a missing file, an HTTP error, a refused or timed-out connection or a
response cut short is a FeedError. Fetching is the host-side edge of the model: the device
state is untouched by it.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from firmware_model.errors import FeedError, SizeLimitError
from policy.network import LOOPBACK_HOSTS

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

    def fetch(self, name: str, limit: int) -> bytes:
        """The file `name`, at most `limit` bytes; SizeLimitError if larger, FeedError if absent
        or cut short."""


def _too_big(name: str, location: str, limit: int) -> SizeLimitError:
    return SizeLimitError(f"{name} from {location} is larger than its limit of {limit} bytes")


@dataclass(frozen=True)
class DirectoryFeed:
    """A channel folder on the host's file system."""

    root: Path

    @property
    def location(self) -> str:
        return str(self.root)

    def fetch(self, name: str, limit: int) -> bytes:
        path = self.root / name
        try:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
        except FileNotFoundError:
            raise FeedError(f"feed {self.root} has no {name}") from None
        except OSError as error:
            raise FeedError(f"feed {self.root}: cannot read {name} ({error.strerror})") from None
        if len(data) > limit:
            raise _too_big(name, self.location, limit)
        return data


@dataclass(frozen=True)
class HttpFeed:
    """A channel folder served over HTTP(S) on the loopback interface."""

    base_url: str
    ssl_context: ssl.SSLContext | None = None
    timeout: float = FETCH_TIMEOUT

    @property
    def location(self) -> str:
        return self.base_url

    def fetch(self, name: str, limit: int) -> bytes:
        url = urllib.parse.urljoin(self.base_url.rstrip("/") + "/", name)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout,
                                        context=self.ssl_context) as response:
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise _too_big(name, self.location, limit)
                data: bytes = response.read(limit + 1)
                if declared is not None and declared.isdigit() and len(data) < int(declared):
                    raise http.client.IncompleteRead(data, int(declared) - len(data))
        except urllib.error.HTTPError as error:
            raise FeedError(f"feed {url}: HTTP {error.code} {error.reason}") from None
        except urllib.error.URLError as error:
            raise FeedError(f"feed {url}: cannot fetch ({error.reason})") from None
        except http.client.IncompleteRead as error:
            raise FeedError(
                f"feed {url}: response cut short after {len(error.partial)} bytes"
            ) from None
        except (http.client.HTTPException, OSError) as error:
            raise FeedError(f"feed {url}: {type(error).__name__} ({error})") from None
        if len(data) > limit:
            raise _too_big(name, self.location, limit)
        return data


@dataclass
class MemoryFeed:
    """A channel held in memory: what the sweep and tests serve (files by name)."""

    files: Mapping[str, bytes]
    name: str = "memory"
    fetched: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        return self.name

    def fetch(self, name: str, limit: int) -> bytes:
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
        files = {path.name: path.read_bytes() for path in sorted(root.glob("*.imagepackage"))}
        if MANIFEST_NAME not in files:
            raise FeedError(f"feed {root} has no {MANIFEST_NAME}")
        return cls(files, str(root))


def channel_location(location: str, channel: str | None) -> str:
    """The channel folder for a feed `location`: itself if it ends in a channel name."""
    if channel is not None and channel not in CHANNELS:
        raise FeedError(f"unknown channel {channel!r}: expected one of {', '.join(CHANNELS)}")
    last = location.rstrip("/").rsplit("/", 1)[-1]
    if last in CHANNELS:
        if channel is not None and channel != last:
            raise FeedError(f"feed {location} is the {last} channel, not {channel}")
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

    FeedError for a URL off the loopback interface or a scheme other than http/https.
    """
    folder = channel_location(location, channel)
    parsed = urllib.parse.urlparse(folder)
    if parsed.scheme in ("http", "https"):
        if parsed.hostname not in LOOPBACK_HOSTS:
            raise FeedError(f"feed {location}: the model fetches from loopback hosts only "
                            f"({', '.join(LOOPBACK_HOSTS)})")
        return HttpFeed(folder, ssl_context if parsed.scheme == "https" else None, timeout)
    if parsed.scheme not in ("", "file"):
        raise FeedError(f"feed {location}: unsupported scheme {parsed.scheme!r}")
    given = Path(urllib.parse.urlparse(location).path if parsed.scheme == "file" else location)
    if (given / MANIFEST_NAME).is_file():
        return DirectoryFeed(given)  # a channel folder under a name of its own
    return DirectoryFeed(Path(parsed.path if parsed.scheme == "file" else folder))
