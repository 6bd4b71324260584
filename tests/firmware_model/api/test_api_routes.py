"""The device REST API's routes in this process (no HTTP): the shapes Microsoft's client and its
tests expect, sideloaded updates accepted exactly as from a feed (nothing staged is trusted
until installed; a refused stage changes nothing; a restart without an install boots what it
booted), the app certificate store's refusals as REST error codes, unknown routes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization

from firmware_model.api import codes
from firmware_model.api.routes import Reply, Request, dispatch
from firmware_model.api.service import REST_API_VERSION, DeviceApi
from firmware_model.device.app_certstore import AVAILABLE_WHEN_EMPTY
from firmware_model.device.identity import device_id, identity_key
from firmware_model.device.model import Device
from firmware_model.device.status import OS_VERSION
from firmware_model.image.sections import ImageType
from hal.soft.machine import Snapshot, SoftwareMachine
from tests.firmware_model.certlab import Client, certificate, der_of_size, pem
from tests.firmware_model.devicelab import Lab, Outside, small_device, stranger

STORE_2024 = uuid.UUID("4010c57a-fe73-4fb6-b80e-bac553117ba0")
STORE_2025 = uuid.UUID("93a3ac0e-1dd1-45fc-805c-1fe3cbac1f27")


@pytest.fixture(scope="module")
def provisioned(device_lab: Lab) -> tuple[Device, Snapshot]:
    device = small_device(device_lab)
    return device, cast(SoftwareMachine, device.machine).snapshot()


@pytest.fixture
def api(provisioned: tuple[Device, Snapshot]) -> Iterator[DeviceApi]:
    """A freshly provisioned device (pre-2025 store) with its API."""
    device, snap = provisioned
    cast(SoftwareMachine, device.machine).restore(snap)
    device.boot()
    yield DeviceApi(device)


def call(api: DeviceApi, method: str, path: str, body: Any = None,
         content_type: str | None = None) -> Reply:
    if isinstance(body, dict):
        body, content_type = json.dumps(body).encode(), content_type or "application/json"
    elif isinstance(body, bytes):
        content_type = content_type or "application/octet-stream"
    reply = dispatch(api, Request(method, "/" + path, content_type, body or b""))
    if reply.after is not None:
        reply.after()
    return reply


def ok(reply: Reply) -> dict[str, Any]:
    assert reply.status == HTTPStatus.OK, reply
    assert reply.body is not None
    return reply.body


def refused(reply: Reply, status: HTTPStatus, code: int | None) -> None:
    assert (reply.status, reply.body) == (status, None if code is None else {"error": code}), reply


def store_image(api: DeviceApi) -> dict[str, Any]:
    components = ok(call(api, "GET", "images"))["components"]
    return next(c for c in components if c["image_type"] == ImageType.UpdateCertStore)


# -- device --------------------------------------------------------------------------------------

def test_status_is_whole_seconds_of_uptime_and_a_restart_starts_it_again(api: DeviceApi) -> None:
    machine = cast(SoftwareMachine, api.device.machine)
    machine.clock.advance(3600.7)
    boots = machine.reset.boot_count()
    assert ok(call(api, "GET", "status")) == {"uptime": 3600}
    assert ok(call(api, "POST", "restart")) == {"restartingSystem": True}
    assert ok(call(api, "GET", "status")) == {"uptime": 0}
    assert machine.reset.boot_count() == boots + 1


def test_osversion_is_the_models_and_no_update_changes_it(api: DeviceApi,
                                                          device_lab: Lab) -> None:
    assert ok(call(api, "GET", "osversion")) == {"osversion": OS_VERSION} == {"osversion": "24.03"}
    ok(call(api, "PUT", "update/stage", device_lab.image("certstore-2025-02")))
    ok(call(api, "POST", "update/install", {"appControlMode": "Auto"}))
    ok(call(api, "POST", "restart"))
    assert store_image(api)["images"][0]["uid"] == str(STORE_2025)
    assert ok(call(api, "GET", "osversion")) == {"osversion": "24.03"}


def test_the_device_is_known_by_its_identity_public_key(api: DeviceApi) -> None:
    state = ok(call(api, "GET", "device/security_state"))
    numbers = identity_key(api.device.machine.otp).public_numbers()
    expected = (numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")).hex()
    assert state == {"securityState": "SECURE", "deviceIdentifier": expected,
                     "deviceIdentityPublicKey": expected}
    assert len(expected) == 128
    ok(call(api, "POST", "restart"))
    assert device_id(api.device.machine.otp) == expected  # the fuses hold it: a reset keeps it


def test_images_lists_the_keystore_and_the_store_with_what_they_run(api: DeviceApi) -> None:
    images = ok(call(api, "GET", "images"))
    assert (images["is_ota_update_in_progress"], images["has_staged_updates"],
            images["restart_required"]) == (False, False, False)
    running = api.device.running.loaded.installed()
    by_type = {c["image_type"]: c for c in images["components"]}
    assert sorted(by_type) == [19, 22]
    for component in by_type.values():
        installed = next(i for i in running.values()
                         if str(i.component_id) == component["uid"])
        assert component["is_update_staged"] is False
        assert component["does_image_type_require_restart"] is True
        assert component["images"] == [{"uid": str(installed.image_id),
                                        "length_in_bytes": installed.length,
                                        "uncompressed_length_in_bytes": installed.length,
                                        "replica_type": 0}]
    assert by_type[22]["name"] == "UpdateCertStore" and by_type[22]["images"][0]["uid"] == str(
        STORE_2024)


# -- sideloaded updates --------------------------------------------------------------------------

def test_a_staged_store_is_not_trusted_until_installed(api: DeviceApi, device_lab: Lab) -> None:
    before = Outside.of(api.device)
    assert ok(call(api, "PUT", "update/stage", device_lab.image("certstore-2025-02"))) == {}
    assert Outside.of(api.device) == before  # staging writes nothing
    images = ok(call(api, "GET", "images"))
    assert images["has_staged_updates"] is True and store_image(api)["is_update_staged"] is True
    assert store_image(api)["images"][0]["uid"] == str(STORE_2024)
    assert "Baltimore_CyberTrust_Root" in api.device.store.names


def test_a_restart_without_install_forgets_the_stage_and_boots_what_it_booted(
        api: DeviceApi, device_lab: Lab) -> None:
    flash = api.device.machine.flash
    whole = flash.hash(0, flash.geometry.size)
    ok(call(api, "PUT", "update/stage", device_lab.image("certstore-2025-02")))
    ok(call(api, "POST", "restart"))
    assert flash.hash(0, flash.geometry.size) == whole
    assert ok(call(api, "GET", "images"))["has_staged_updates"] is False
    assert store_image(api)["images"][0]["uid"] == str(STORE_2024)
    ok(call(api, "POST", "update/install"))  # nothing staged any more: nothing to do
    assert flash.hash(0, flash.geometry.size) == whole


def test_install_then_restart_boots_the_staged_store(api: DeviceApi, device_lab: Lab) -> None:
    ok(call(api, "PUT", "update/stage", device_lab.image("certstore-2025-02")))
    ok(call(api, "POST", "update/install"))
    images = ok(call(api, "GET", "images"))
    assert (images["has_staged_updates"], images["restart_required"]) == (False, True)
    assert store_image(api)["images"][0]["uid"] == str(STORE_2024)  # runs the old until then
    ok(call(api, "POST", "restart"))
    assert ok(call(api, "GET", "images"))["restart_required"] is False
    assert store_image(api)["images"][0]["uid"] == str(STORE_2025)
    assert "Baltimore_CyberTrust_Root" not in api.device.store.names
    assert api.device.running.report.to_json()["used"] == "active"


def test_nothing_is_staged_or_installed_while_a_restart_is_required(
        api: DeviceApi, device_lab: Lab) -> None:
    ok(call(api, "PUT", "update/stage", device_lab.image("certstore-2025-02")))
    ok(call(api, "POST", "update/install"))
    before = Outside.of(api.device)
    refused(call(api, "PUT", "update/stage", device_lab.image("keystore-2025-02")),
            HTTPStatus.CONFLICT, codes.REBOOT_REQUIRED)
    refused(call(api, "POST", "update/install"), HTTPStatus.CONFLICT, codes.REBOOT_REQUIRED)
    assert Outside.of(api.device) == before


def test_staging_the_running_store_stages_nothing(api: DeviceApi, device_lab: Lab) -> None:
    ok(call(api, "PUT", "update/stage", device_lab.image("certstore-2025-02")))
    ok(call(api, "PUT", "update/stage", device_lab.image("certstore-2024")))  # it runs already
    assert ok(call(api, "GET", "images"))["has_staged_updates"] is False


def test_a_keystore_and_a_store_staged_together_install_as_one_set(
        api: DeviceApi, device_lab: Lab) -> None:
    newkey_store = device_lab.image("certstore-2024-newkey")  # signed by the July 2024 key
    refused(call(api, "PUT", "update/stage", newkey_store), HTTPStatus.FORBIDDEN,
            codes.IMAGE_NOT_TRUSTED)  # the running keystore does not know that key
    ok(call(api, "PUT", "update/stage", device_lab.image("keystore-2024-07")))
    ok(call(api, "PUT", "update/stage", newkey_store))  # now checked with the staged keystore
    assert all(c["is_update_staged"] for c in ok(call(api, "GET", "images"))["components"])
    ok(call(api, "POST", "update/install"))
    ok(call(api, "POST", "restart"))
    running = {i.name for i in api.device.running.loaded.installed().values()}
    assert running == {"keystore-2024-07", "certstore-2024-newkey"}


def _tampered(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])  # the signature's last byte


def _refusals(lab: Lab) -> dict[str, tuple[bytes, HTTPStatus, int]]:
    store = lab.image("certstore-2025-02")
    roots = lab.roots("certstore-2025-02")
    return {
        "tampered": (_tampered(store), HTTPStatus.FORBIDDEN, codes.IMAGE_NOT_TRUSTED),
        "cut short": (store[:100], HTTPStatus.BAD_REQUEST, codes.IMAGE_NOT_STAGED),
        "not an image": (b"hello device", HTTPStatus.BAD_REQUEST, codes.IMAGE_NOT_STAGED),
        "an application": (lab.image("app-example"), HTTPStatus.BAD_REQUEST,
                           codes.IMAGE_NOT_STAGED),
        "a manifest": (lab.image("manifest-retail"), HTTPStatus.BAD_REQUEST,
                       codes.IMAGE_NOT_STAGED),
        "another component": (lab.store(roots, 2, component_id=uuid.uuid4()),
                              HTTPStatus.BAD_REQUEST, codes.INVALID_COMPONENT_ID),
        "a rollback": (lab.store(roots, 0), HTTPStatus.FORBIDDEN, codes.IMAGE_NOT_TRUSTED),
        "a stranger's": (lab.store(roots, 2, signer=stranger()), HTTPStatus.FORBIDDEN,
                         codes.IMAGE_NOT_TRUSTED),
        "a store with no root": (lab.store([], 2), HTTPStatus.FORBIDDEN,
                                 codes.IMAGE_NOT_TRUSTED),
    }


@pytest.mark.parametrize("case", ["tampered", "cut short", "not an image", "an application",
                                  "a manifest", "another component", "a rollback",
                                  "a stranger's", "a store with no root"])
def test_a_refused_stage_answers_its_code_and_changes_nothing(
        api: DeviceApi, device_lab: Lab, case: str) -> None:
    data, status, code = _refusals(device_lab)[case]
    ok(call(api, "PUT", "update/stage", device_lab.image("keystore-2025-02")))
    before = Outside.of(api.device)
    refused(call(api, "PUT", "update/stage", data), status, code)
    assert Outside.of(api.device) == before
    staged = ok(call(api, "GET", "images"))
    assert [c["is_update_staged"] for c in staged["components"]] == [True, False]  # kept


def test_stage_takes_an_octet_stream_and_add_takes_json(api: DeviceApi, device_lab: Lab) -> None:
    refused(call(api, "PUT", "update/stage", device_lab.image("certstore-2025-02"),
                 "application/x-www-form-urlencoded"), HTTPStatus.UNSUPPORTED_MEDIA_TYPE, None)
    refused(call(api, "POST", "certstore/certs/a", b"{}", "text/plain"),
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, None)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "wifi/scan"), ("GET", "log"), ("GET", f"app/status/{uuid.uuid4()}"),
    ("DELETE", "telemetry"), ("GET", "net/interfaces"), ("DELETE", "update/stage"),
    ("GET", "certstore/certs/a/b"), ("POST", "status"), ("GET", ""),
])
def test_a_route_the_model_does_not_have_answers_404_invalid_request_uri(
        api: DeviceApi, method: str, path: str) -> None:
    refused(call(api, method, path), HTTPStatus.NOT_FOUND, codes.INVALID_URI)


def test_every_answer_carries_the_version_that_unlocks_every_call() -> None:
    assert REST_API_VERSION == "4.6.0"  # osversion needs 4.5.0, Wi-Fi power savings 4.6.0


# -- the app certificate store -------------------------------------------------------------------

def root_body(blob: bytes) -> dict[str, str]:
    return {"certType": "rootca", "publicCert": blob.decode()}


def test_a_root_is_added_listed_shown_counted_and_deleted(api: DeviceApi) -> None:
    blob = pem(certificate("Lab Root"))
    assert ok(call(api, "GET", "certstore/space")) == {"AvailableSpace": "24514"}
    assert ok(call(api, "POST", "certstore/certs/Lab-Root", root_body(blob))) == {}
    assert ok(call(api, "GET", "certstore/certs")) == {"identifiers": ["Lab-Root"]}
    assert ok(call(api, "GET", "certstore/certs/Lab-Root")) == {
        "id": "Lab-Root", "notBefore": "2024-03-01T12:30:00", "notAfter": "2034-03-01T12:30:00",
        "subjectName": "/C=US/O=Lab/CN=Lab Root", "issuerName": "/C=US/O=Lab/CN=Lab Root"}
    assert ok(call(api, "GET", "certstore/space")) == {
        "AvailableSpace": str(AVAILABLE_WHEN_EMPTY - len(blob))}
    assert ok(call(api, "DELETE", "certstore/certs/Lab-Root")) == {}
    assert ok(call(api, "GET", "certstore/certs")) == {"identifiers": []}
    assert ok(call(api, "GET", "certstore/space")) == {"AvailableSpace": "24514"}


def test_the_app_store_is_not_the_os_trusted_root_store(api: DeviceApi) -> None:
    roots = api.device.store.names
    ok(call(api, "POST", "certstore/certs/Lab-Root", root_body(pem(certificate()))))
    assert api.device.store.names == roots
    assert "Baltimore_CyberTrust_Root" not in ok(call(api, "GET", "certstore/certs"))["identifiers"]


def test_a_client_certificate_with_an_encrypted_key_is_added(api: DeviceApi) -> None:
    client = Client.make()
    body = {"certType": "client", "publicCert": pem(client.cert).decode(),
            "privateKey": client.key_pem(b"secret").decode(), "password": "secret"}
    ok(call(api, "POST", "certstore/certs/wifi", body))
    assert api.device.app_store.info("wifi").kind.value == "client"


def _client_body(password: str | None, encrypted: bool = False) -> dict[str, str]:
    client = Client.make()
    body = {"certType": "client", "publicCert": pem(client.cert).decode(),
            "privateKey": client.key_pem(b"pw" if encrypted else None).decode()}
    return body if password is None else {**body, "password": password}


def _store_refusals() -> dict[str, tuple[str, Any, HTTPStatus, int]]:
    blob = pem(certificate())
    key = Client.make().key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode()
    return {
        "unknown id (show)": ("GET", None, HTTPStatus.CONFLICT, codes.CERT_NOT_FOUND),
        "unknown id (delete)": ("DELETE", None, HTTPStatus.CONFLICT, codes.CERT_NOT_FOUND),
        "malformed PEM": ("POST", {"certType": "rootca", "publicCert": "-----BEGIN CERTIFICATE"
                                   "-----\nAAAA\n-----END CERTIFICATE-----\n"},
                          HTTPStatus.BAD_REQUEST, codes.CERT_CONTENT_INVALID),
        "no certType": ("POST", {"publicCert": blob.decode()}, HTTPStatus.BAD_REQUEST,
                        codes.CERT_TYPE_INVALID),
        "not JSON": ("POST", b"{", HTTPStatus.BAD_REQUEST, codes.CERT_TYPE_INVALID),
        "JSON nested too deep": ("POST", b"[" * 60000, HTTPStatus.BAD_REQUEST,
                                 codes.CERT_TYPE_INVALID),
        "not UTF-8": ("POST", b'{"certType": "\xff"}', HTTPStatus.BAD_REQUEST,
                      codes.CERT_TYPE_INVALID),
        "no publicCert": ("POST", {"certType": "rootca"}, HTTPStatus.BAD_REQUEST,
                          codes.CERT_CONTENT_INVALID),
        "a root with a key": ("POST", {**root_body(blob), "privateKey": key},
                              HTTPStatus.BAD_REQUEST, codes.PRIVATE_KEY_NOT_ALLOWED),
        "a root with a password": ("POST", {**root_body(blob), "password": "x"},
                                   HTTPStatus.BAD_REQUEST, codes.PASSWORD_NOT_ALLOWED),
        "a client without its key": ("POST", {"certType": "client", "publicCert": blob.decode()},
                                     HTTPStatus.BAD_REQUEST, codes.PRIVATE_KEY_INVALID),
        "a password for a plain key": ("POST", _client_body("x"), HTTPStatus.BAD_REQUEST,
                                       codes.PASSWORD_FOR_PLAIN_KEY),
        "a wrong password": ("POST", _client_body("y", encrypted=True), HTTPStatus.BAD_REQUEST,
                             codes.PRIVATE_KEY_INVALID),
        "a certificate over 8192 bytes": ("POST", {"certType": "rootca",
                                                   "publicCert": "A" * 8193},
                                          HTTPStatus.BAD_REQUEST, codes.PUBLIC_CERT_TOO_LONG),
    }


@pytest.mark.parametrize("case", sorted(_store_refusals()))
def test_an_app_store_refusal_answers_its_code_and_changes_nothing(
        api: DeviceApi, case: str) -> None:
    method, body, status, code = _store_refusals()[case]
    ok(call(api, "POST", "certstore/certs/kept", root_body(pem(certificate("Kept")))))
    before = Outside.of(api.device)
    content_type = "application/json" if isinstance(body, bytes) else None  # "not JSON"
    refused(call(api, method, "certstore/certs/absent", body, content_type), status, code)
    assert Outside.of(api.device) == before


@pytest.mark.parametrize(("identifier", "code"), [
    ("a" * 17, codes.CERT_ID_TOO_LONG), ("", codes.CERT_ID_TOO_LONG),
    ("a%2Fb", codes.CERT_ID_INVALID), ("caf%C3%A9", codes.CERT_ID_INVALID),
    ("two%20words", codes.CERT_ID_INVALID),
])
def test_an_identifier_the_store_cannot_take_answers_its_code(
        api: DeviceApi, identifier: str, code: int) -> None:
    refused(call(api, "POST", f"certstore/certs/{identifier}", root_body(pem(certificate()))),
            HTTPStatus.BAD_REQUEST, code)


def _pem_of_length_in(low: int, high: int) -> bytes:
    """A PEM certificate of low < length <= high bytes."""
    for padding in range(4000, 7000, 2):
        blob = pem(certificate("Third", padding=padding))
        if low < len(blob) <= high:
            return blob
    raise AssertionError(f"no PEM certificate of {low + 1} to {high} bytes")


def test_a_full_store_answers_out_of_space(api: DeviceApi) -> None:
    for index in range(2):
        api.device.app_store.install_root_ca(f"big{index}", der_of_size(8192, f"Big{index}"))
    free = AVAILABLE_WHEN_EMPTY - 2 * 8192  # 8130
    assert ok(call(api, "GET", "certstore/space")) == {"AvailableSpace": str(free)}
    before = Outside.of(api.device)
    refused(call(api, "POST", "certstore/certs/third", root_body(_pem_of_length_in(free, 8192))),
            HTTPStatus.CONFLICT, codes.CERT_NO_SPACE)
    assert Outside.of(api.device) == before


def test_staging_an_image_does_not_touch_the_app_store(api: DeviceApi, device_lab: Lab) -> None:
    ok(call(api, "POST", "certstore/certs/Lab-Root", root_body(pem(certificate()))))
    ok(call(api, "PUT", "update/stage", device_lab.image("certstore-2025-02")))
    ok(call(api, "POST", "update/install"))
    ok(call(api, "POST", "restart"))
    assert store_image(api)["images"][0]["uid"] == str(STORE_2025)
    assert ok(call(api, "GET", "certstore/certs")) == {"identifiers": ["Lab-Root"]}


class _NoUptime:
    """A reset controller that cannot tell the uptime (an older board), over a real one."""

    def __init__(self, reset: Any) -> None:
        self._reset = reset

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reset, name)

    def uptime(self) -> None:
        return None


class _OlderBoard:
    """A machine whose reset controller cannot tell the uptime, over a software machine."""

    def __init__(self, machine: SoftwareMachine) -> None:
        self._machine = machine
        self.reset = _NoUptime(machine.reset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._machine, name)


def test_where_the_board_cannot_tell_the_uptime_it_counts_from_the_boot_it_saw(
        device_lab: Lab) -> None:
    machine = cast(SoftwareMachine, small_device(device_lab).machine)
    device = Device(cast(Any, _OlderBoard(machine)))
    device.boot()
    now = [500.0]
    api = DeviceApi(device, host_clock=lambda: now[0])
    assert ok(call(api, "GET", "status")) == {"uptime": 0}
    now[0] += 42.9
    assert ok(call(api, "GET", "status")) == {"uptime": 42}
    ok(call(api, "POST", "restart"))
    assert ok(call(api, "GET", "status")) == {"uptime": 0}
