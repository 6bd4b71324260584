"""The routes of the device REST API and how a request reaches `service.DeviceApi`, without
HTTP: a `Request` in (method, path, content type, body), a `Reply` out (status, JSON body,
and for `restart` what to do once the reply is sent).

| route                        | DeviceApi                  | body in                         |
|------------------------------|----------------------------|---------------------------------|
| GET status                   | status                     |                                 |
| GET osversion                | os_version                 |                                 |
| GET device/security_state    | security_state             |                                 |
| GET images                   | images                     |                                 |
| PUT update/stage             | stage                      | an image package (octet-stream) |
| POST update/install          | install                    | `{"appControlMode": ...}`, unused |
| POST restart                 | restart, after the reply   |                                 |
| GET certstore/certs          | certificates               |                                 |
| GET certstore/certs/{id}     | certificate                |                                 |
| POST certstore/certs/{id}    | add_certificate            | JSON                            |
| DELETE certstore/certs/{id}  | remove_certificate         |                                 |
| GET certstore/space          | certificate_space          |                                 |

Any other method and path answers 404 `{"error": 15728642}` ("Invalid request URI."), as a
device answers a route it does not have (docs/device-api.md). `{id}` is percent-decoded; a
query string is ignored.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from firmware_model.api import codes
from firmware_model.api.codes import ApiError
from firmware_model.api.service import JSON, DeviceApi
from firmware_model.trust.components import Component

OCTET_STREAM = "application/octet-stream"
APPLICATION_JSON = "application/json"
#: The most a JSON body may hold (a client certificate, its key and password fit many times).
JSON_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Request:
    """One request as the routes see it: `path` as sent (leading `/`, maybe a query)."""

    method: str
    path: str
    content_type: str | None = None
    body: bytes = b""


@dataclass(frozen=True)
class Reply:
    """An answer: `status`, a JSON `body` (None: no body), `after` to run once it is sent,
    `note` for the server's log (why a refusal was made)."""

    status: HTTPStatus
    body: JSON | None
    after: Callable[[], None] | None = None
    note: str = ""


Handler = Callable[[DeviceApi, Request, dict[str, str]], Reply | JSON]


def _media_type(request: Request) -> str:
    return (request.content_type or "").split(";")[0].strip().lower()


def _require(request: Request, media: str) -> None:
    if _media_type(request) != media:
        raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, None,
                       f"expected Content-Type {media}, got {request.content_type!r}")


def _stage(api: DeviceApi, request: Request, _: dict[str, str]) -> JSON:
    _require(request, OCTET_STREAM)
    return api.stage(request.body)


def _json_body(request: Request) -> Any:
    _require(request, APPLICATION_JSON)
    try:
        return json.loads(request.body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None  # not JSON (or nested past what Python parses): a body without certType


def _add(api: DeviceApi, request: Request, match: dict[str, str]) -> JSON:
    return api.add_certificate(match["id"], _json_body(request))


def _restart(api: DeviceApi, _request: Request, _match: dict[str, str]) -> Reply:
    api.booted()  # a device that does not run cannot be asked to restart
    return Reply(HTTPStatus.OK, {"restartingSystem": True}, after=api.restart)


_ID = r"certstore/certs/(?P<id>[^/]*)"
ROUTES: tuple[tuple[str, re.Pattern[str], Handler], ...] = tuple(
    (method, re.compile(pattern), handler) for method, pattern, handler in (
        ("GET", "status", lambda api, _r, _m: api.status()),
        ("GET", "osversion", lambda api, _r, _m: api.os_version()),
        ("GET", "device/security_state", lambda api, _r, _m: api.security_state()),
        ("GET", "images", lambda api, _r, _m: api.images()),
        ("PUT", "update/stage", _stage),
        ("POST", "update/install", lambda api, _r, _m: api.install()),
        ("POST", "restart", _restart),
        ("GET", "certstore/certs", lambda api, _r, _m: api.certificates()),
        ("GET", _ID, lambda api, _r, m: api.certificate(m["id"])),
        ("POST", _ID, _add),
        ("DELETE", _ID, lambda api, _r, m: api.remove_certificate(m["id"])),
        ("GET", "certstore/space", lambda api, _r, _m: api.certificate_space()),
    ))


def route_of(method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
    """The handler of `method path` and its path parameters (percent-decoded); None if the
    API has no such route."""
    route = urllib.parse.urlsplit(path).path.lstrip("/")
    for verb, pattern, handler in ROUTES:
        match = pattern.fullmatch(route)
        if verb == method and match is not None:
            return handler, {k: urllib.parse.unquote(v, errors="replace")
                             for k, v in match.groupdict().items()}
    return None


def body_limit(api: DeviceApi, method: str, path: str) -> int:
    """The most bytes a request's body may hold: an image package as large as the largest
    slot for `update/stage`, JSON_LIMIT otherwise."""
    if method == "PUT" and urllib.parse.urlsplit(path).path.strip("/") == "update/stage":
        layout = api.device.flash_layout
        return max(layout.capacity(component) for component in Component)
    return JSON_LIMIT


def too_large(length: int, limit: int) -> Reply:
    """The reply to a body of `length` bytes over `limit`."""
    refusal = codes.bad_request(codes.CONTENT_TOO_LARGE,
                                f"a body of {length} bytes; at most {limit}")
    return Reply(refusal.status, refusal.body(), note=refusal.reason)


def dispatch(api: DeviceApi, request: Request) -> Reply:
    """The reply to `request`. Refusals are answered here; any other error (a HAL that
    failed, a device that does not boot) propagates: the server answers it 500."""
    found = route_of(request.method, request.path)
    try:
        if found is None:
            raise codes.unknown_route(request.method, request.path)
        handler, parameters = found
        reply = handler(api, request, parameters)
    except ApiError as refusal:
        return Reply(refusal.status, refusal.body(), note=refusal.reason)
    return reply if isinstance(reply, Reply) else Reply(HTTPStatus.OK, reply)
