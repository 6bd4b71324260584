"""What the device does for each route of its REST API: JSON in, JSON out, on a `Device`.

    api = DeviceApi(device)          # a booted device
    api.status()                     # {"uptime": 634}
    api.stage(image_bytes); api.install(); api.restart()
    api.add_certificate("Lab-Root", {"certType": "rootca", "publicCert": pem_text})

Shapes are those Microsoft's client and its tests expect (docs/device-api.md has the table and
sources). Refusals raise `codes.ApiError`; a typed error that is no refusal (a HAL that failed,
a device that does not boot) propagates, and the server answers it 500. Not thread safe: the
server calls one method at a time (`server.ApiServer` holds a lock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from firmware_model.agent.sideload import Sideload
from firmware_model.agent.updater import Updater
from firmware_model.api import codes
from firmware_model.api.codes import bad_request
from firmware_model.device.app_certstore import AppCertStore, CertInfo
from firmware_model.device.boot import Booted
from firmware_model.device.identity import device_id
from firmware_model.device.model import Device
from firmware_model.device.status import OS_VERSION
from firmware_model.errors import CertStoreError, FwModelError
from firmware_model.image.package import parse_package
from firmware_model.image.sections import SectionId, image_type_name
from firmware_model.trust.components import Component
from hal.interfaces import ResetCause

#: The `REST-API-Version` every answer carries: the highest version the gates of
#: azuresphere-device-api 1.1.1 ask for (osversion needs 4.5.0, Wi-Fi power savings 4.6.0), so
#: the client refuses no call for the version; what the model does not serve answers as an
#: unknown route.
REST_API_VERSION = "4.6.0"
#: `securityState` as Microsoft's REST API reference shows it.
SECURITY_STATE = "SECURE"
#: `replica_type` of every image (Microsoft's example shows 0; its meaning is not documented).
REPLICA_TYPE = 0
JSON = dict[str, Any]
T = TypeVar("T")


def certificate_json(info: CertInfo) -> JSON:
    """`GET certstore/certs/{id}`: names in OpenSSL's one-line form, dates UTC without a zone."""
    return {"id": info.identifier,
            "notBefore": info.not_before.strftime("%Y-%m-%dT%H:%M:%S"),
            "notAfter": info.not_after.strftime("%Y-%m-%dT%H:%M:%S"),
            "subjectName": info.subject_name, "issuerName": info.issuer_name}


def _text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def _blob(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@dataclass
class DeviceApi:
    """The REST API of `device` (see module doc)."""

    device: Device
    host_clock: Callable[[], float] = time.monotonic  # for an uptime the board cannot tell
    sideload: Sideload = field(init=False)
    _boot_seen: tuple[Booted | None, float] = (None, 0.0)

    def __post_init__(self) -> None:
        self.sideload = Sideload(Updater(self.device))

    def booted(self) -> Booted:
        """The running boot; a device that does not boot answers nothing (its boot failure,
        NotProvisionedError before it was provisioned, propagates)."""
        return self.device.running

    # -- device ----------------------------------------------------------------------------------

    def status(self) -> JSON:
        """`GET status`: whole seconds since the last boot (the HAL's uptime; where the board
        cannot tell, the time since this server saw the boot)."""
        running = self.booted()
        uptime = self.device.machine.reset.uptime()
        if uptime is None:
            if self._boot_seen[0] is not running:
                self._boot_seen = (running, self.host_clock())
            uptime = self.host_clock() - self._boot_seen[1]
        return {"uptime": int(uptime)}

    def os_version(self) -> JSON:
        """`GET osversion` (the model's OS version: no update changes it)."""
        self.booted()
        return {"osversion": OS_VERSION}

    def security_state(self) -> JSON:
        """`GET device/security_state`: the device ID is its identity public key."""
        self.booted()
        identifier = device_id(self.device.machine.otp)
        return {"securityState": SECURITY_STATE, "deviceIdentifier": identifier,
                "deviceIdentityPublicKey": identifier}

    def restart(self) -> None:
        """`POST restart` (after its answer `{"restartingSystem": true}` is sent): a software
        reset; RAM, and so whatever was staged, is lost; the boot path runs."""
        self.device.log("[api] restarting")
        self.device.machine.reset.request_reset(ResetCause.SOFTWARE)

    # -- images and updates ----------------------------------------------------------------------

    def images(self) -> JSON:
        """`GET images`: the keystore and the store, each with the image it runs."""
        staged = self.sideload.staged()
        return {"is_ota_update_in_progress": False, "has_staged_updates": bool(staged),
                "restart_required": self.sideload.restart_required(),
                "components": [self._component(c, c in staged) for c in Component]}

    def _component(self, component: Component, staged: bool) -> JSON:
        loaded = self.device.running.loaded
        installed = loaded.installed()[component]
        image = parse_package(loaded.image(component).data)
        compression = image.section(SectionId.Compression)
        uncompressed = installed.length if compression is None or compression.fields is None \
            else int(compression.fields["uncompressed_size"])
        return {"uid": str(installed.component_id), "image_type": int(component.image_type),
                "is_update_staged": staged, "does_image_type_require_restart": True,
                "images": [{"uid": str(installed.image_id), "length_in_bytes": installed.length,
                            "uncompressed_length_in_bytes": uncompressed,
                            "replica_type": REPLICA_TYPE}],
                "name": image_type_name(component.image_type)}

    def stage(self, data: bytes) -> JSON:
        """`PUT update/stage`: accept an image package as an update's image (nothing written)."""
        self._sideloading(lambda: self.sideload.stage(data))
        return {}

    def install(self) -> JSON:
        """`POST update/install`: write what is staged and commit it; the next restart boots
        it. Nothing staged: nothing done."""
        self._sideloading(self.sideload.install)
        return {}

    def _sideloading(self, step: Callable[[], object]) -> None:
        try:
            step()
        except FwModelError as error:
            refusal = codes.stage_refusal(error)
            if refusal is None:
                raise
            self.device.log(f"[api] refused: {refusal.reason}")
            raise refusal from None

    # -- the app certificate store ---------------------------------------------------------------

    @property
    def store(self) -> AppCertStore:
        self.booted()  # the store is the OS's: no boot, no store
        return self.device.app_store

    def certificates(self) -> JSON:
        """`GET certstore/certs`."""
        return {"identifiers": self.store.identifiers()}

    def certificate(self, identifier: str) -> JSON:
        """`GET certstore/certs/{id}`."""
        return certificate_json(self._certstore(lambda: self.store.info(identifier)))

    def remove_certificate(self, identifier: str) -> JSON:
        """`DELETE certstore/certs/{id}`."""
        self._certstore(lambda: self.store.delete(identifier))
        return {}

    def certificate_space(self) -> JSON:
        """`GET certstore/space` (a string, as devices answer)."""
        return {"AvailableSpace": str(self.store.available_space())}

    def add_certificate(self, identifier: str, body: Any) -> JSON:
        """`POST certstore/certs/{id}` with `{"certType": "rootca"|"client", "publicCert":
        PEM, "privateKey": PEM, "password": text}` (the last two for a client certificate)."""
        if not isinstance(body, dict) or body.get("certType") not in ("rootca", "client"):
            raise bad_request(codes.CERT_TYPE_INVALID, "certType must be rootca or client")
        certificate = _text(body, "publicCert")
        if certificate is None:
            raise bad_request(codes.CERT_CONTENT_INVALID, "no publicCert")
        key, password = _text(body, "privateKey"), _text(body, "password")
        store = self.store
        if body["certType"] == "rootca":
            if key is not None:
                raise bad_request(codes.PRIVATE_KEY_NOT_ALLOWED, "a root CA takes no key")
            if password is not None:
                raise bad_request(codes.PASSWORD_NOT_ALLOWED, "a root CA takes no password")
            self._certstore(lambda: store.install_root_ca(identifier, _blob(certificate)))
            return {}
        if key is None:
            raise bad_request(codes.PRIVATE_KEY_INVALID, "a client certificate needs its key")
        self._certstore(lambda: store.install_client(
            identifier, _blob(certificate), _blob(key),
            None if password is None else _blob(password)))
        return {}

    @staticmethod
    def _certstore(call: Callable[[], T]) -> T:
        try:
            return call()
        except CertStoreError as error:
            raise codes.certstore_refusal(error) from None
