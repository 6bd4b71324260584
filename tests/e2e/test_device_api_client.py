"""`fwmodel serve-api` driven by Microsoft's own client, azuresphere-device-api 1.1.1, in its
venv (`.venv-api`, made by `make api-client`): pointed at the server by its two module globals
only, under the tests' network guard (in the client's process too). The February 2025
rehearsal, the app certificate store, bad input giving its code and leaving the device files
byte-identical, a route the model does not have, and the command line's own promises."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from firmware_model.cli.fwmodel import main
from hal.soft.machine import SoftwareMachine
from tests.firmware_model.devicelab import Lab
from tests.oracle.apiserve import Served, files_of, fwmodel
from tests.oracle.apivenv import ClientUnavailable, Server, drive, ensure_api_venv

STORE_2024 = "4010c57a-fe73-4fb6-b80e-bac553117ba0"
STORE_2025 = "93a3ac0e-1dd1-45fc-805c-1fe3cbac1f27"
STORE_COMPONENT = "e5f5f3fc-2eb5-4d1b-a650-b72364446807"


@pytest.fixture(scope="session")
def api_python() -> Path:
    """The python of `.venv-api` (Microsoft's client). Missing, it fails the test: the client
    is part of what the suite proves."""
    try:
        return ensure_api_venv()
    except ClientUnavailable as error:
        pytest.fail(f"Microsoft's client venv (.venv-api) unavailable: {error}", pytrace=False)


def provisioned(lab: Lab, folder: Path) -> Path:
    flash = folder / "dev.flash"
    assert main(["--hal", f"fake:{flash}", "provision", "--images", str(lab.folder)]) == 0
    return flash


@pytest.fixture(scope="module")
def served(device_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("device-api")
    running = Served.start(f"fake:{provisioned(device_lab, folder)}", folder)
    yield running
    code, _, err = running.stop()
    assert code == 0, err


def flash_of(served: Served) -> Path:
    return served.out.parent / "dev.flash"


def ok(result: dict[str, Any]) -> Any:
    assert "ok" in result, result
    return result["ok"]


def device_error(result: dict[str, Any], text: str) -> None:
    assert "error" in result, result
    assert result["error"]["type"] == "DeviceError" and text in result["error"]["message"], result


def store_of(images: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in images["components"] if c["uid"] == STORE_COMPONENT)


def test_the_client_reads_the_device(served: Served, api_python: Path) -> None:
    version, status, os_version, state, images = drive(api_python, served.server, [
        ["device.get_device_rest_api_version"], ["device.get_device_status"],
        ["device.get_device_os_version"], ["device.get_device_security_state"],
        ["image.get_images"]])
    assert ok(version) == {"REST-API-Version": "4.6.0"}
    assert isinstance(ok(status)["uptime"], int)
    assert ok(os_version) == {"osversion": "24.03"}
    assert ok(state)["securityState"] == "SECURE"
    assert len(ok(state)["deviceIdentifier"]) == 128
    assert ok(state)["deviceIdentifier"] == ok(state)["deviceIdentityPublicKey"]
    assert sorted(c["image_type"] for c in ok(images)["components"]) == [19, 22]
    assert store_of(ok(images))["images"][0]["uid"] == STORE_2024


def test_the_app_store_through_the_client(served: Served, api_python: Path,
                                          device_lab: Lab) -> None:
    root = device_lab.folder / "keys" / "root.pem"
    certificate = x509.load_pem_x509_certificate(root.read_bytes())
    added, listed, shown, space, removed, after, space_after = drive(api_python, served.server, [
        ["certificate.add_certificate", "Lab-Root", str(root), "rootca"],
        ["certificate.get_all_certificates"], ["certificate.get_certificate", "Lab-Root"],
        ["certificate.get_certificate_space"], ["certificate.remove_certificate", "Lab-Root"],
        ["certificate.get_all_certificates"], ["certificate.get_certificate_space"]])
    assert ok(added) == {} and ok(removed) == {}
    assert ok(listed) == {"identifiers": ["Lab-Root"]} and ok(after) == {"identifiers": []}
    assert ok(shown) == {
        "id": "Lab-Root", "subjectName": "/O=sphere-fwmodel lab/CN=Lab Root (fused)",
        "issuerName": "/O=sphere-fwmodel lab/CN=Lab Root (fused)",
        "notBefore": certificate.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%S"),
        "notAfter": certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S")}
    assert ok(space) == {"AvailableSpace": str(24514 - len(root.read_bytes()))}
    assert ok(space_after) == {"AvailableSpace": "24514"}


def test_bad_input_through_the_client_gives_its_code_and_changes_nothing(
        served: Served, api_python: Path, device_lab: Lab, tmp_path: Path) -> None:
    store = device_lab.image("certstore-2025-02")
    tampered = tmp_path / "tampered.imagepackage"
    tampered.write_bytes(store[:-1] + bytes([store[-1] ^ 1]))
    short = tmp_path / "short.imagepackage"
    short.write_bytes(store[:200])
    malformed = tmp_path / "malformed.pem"
    malformed.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                         "-----END CERTIFICATE-----\n")
    before = files_of(flash_of(served))
    results = drive(api_python, served.server, [
        ["sideload.stage_image", str(tampered)], ["sideload.stage_image", str(short)],
        ["certificate.get_certificate", "no-such-cert"],
        ["certificate.remove_certificate", "no-such-cert"],
        ["certificate.add_certificate", "bad", str(malformed), "rootca"],
        ["certificate.add_certificate", "a/b", str(device_lab.folder / "keys" / "root.pem"),
         "rootca"],
        ["image.get_images"], ["certificate.get_all_certificates"]])
    device_error(results[0], "Image not trusted by device")
    device_error(results[1], "Image could not be staged; check that it is a valid image package")
    for result in results[2:4]:
        device_error(result, "No certificate with that identifier could be found on the device.")
    device_error(results[4], "Certificate contents are invalid.")
    device_error(results[5], "This resource is unavailable on this device")  # a/b: no such route
    assert ok(results[6])["has_staged_updates"] is False
    assert ok(results[7]) == {"identifiers": []}
    assert files_of(flash_of(served)) == before


def test_a_route_the_model_does_not_have_answers_as_an_unknown_route(
        served: Served, api_python: Path) -> None:
    for result in drive(api_python, served.server, [
            ["wifi.get_all_wifi_networks"], ["network.get_network_status"],
            ["app.get_app_status", str(uuid.uuid4())], ["device.get_diagnostic_log"]]):
        device_error(result, "This resource is unavailable on this device. Invalid request "
                             "URI.. Is your device up to date?")


def test_the_guard_stops_a_client_left_at_its_default_address(api_python: Path) -> None:
    (result,) = drive(api_python, None, [["device.get_device_status"]])
    device_error(result, "Device connection timed out for 192.168.35.2")
    assert any("test network guard" in cause for cause in result["error"]["causes"]), result


def test_the_helper_refuses_to_run_without_the_guard(api_python: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.oracle.apivenv as apivenv

    monkeypatch.setattr(apivenv, "guarded_environment", lambda: {"PATH": "/usr/bin"})
    with pytest.raises(ClientUnavailable, match="network guard is not loaded"):
        drive(api_python, Server("127.0.0.1:1", Path("ca.pem")), [["device.get_device_status"]])


def test_the_february_2025_rehearsal(device_lab: Lab, api_python: Path, tmp_path: Path) -> None:
    flash = provisioned(device_lab, tmp_path)
    with SoftwareMachine(flash, keep_clock=True) as machine:  # the device has been up an hour
        machine.clock.advance(3600)
    served = Served.start(f"fake:{flash}", tmp_path)
    try:
        store = str(device_lab.folder / "certstore-2025-02.imagepackage")
        (status, staged, restarting, forgotten, staged_again, installed, pending, restarted,
         images, os_version, status_after) = drive(api_python, served.server, [
            ["device.get_device_status"], ["sideload.stage_image", store],
            ["device.restart_device"], ["image.get_images"],  # a restart drops the stage
            ["sideload.stage_image", store], ["sideload.install_images"], ["image.get_images"],
            ["device.restart_device"], ["image.get_images"], ["device.get_device_os_version"],
            ["device.get_device_status"]])
        assert ok(status)["uptime"] >= 3600 and ok(staged) == {}
        assert ok(restarting) == ok(restarted) == {"restartingSystem": True}
        assert ok(forgotten)["has_staged_updates"] is False
        assert store_of(ok(forgotten))["images"][0]["uid"] == STORE_2024
        assert (ok(staged_again), ok(installed)) == ({}, {})
        assert (ok(pending)["restart_required"], store_of(ok(pending))["images"][0]["uid"]) == \
            (True, STORE_2024)
        assert ok(images)["restart_required"] is False
        assert store_of(ok(images))["images"][0]["uid"] == STORE_2025
        assert ok(os_version) == {"osversion": "24.03"}
        assert ok(status_after)["uptime"] < 3600
    finally:
        code, out, err = served.stop()
    assert (code, err) == (0, "") and out.splitlines()[-1] == "stopped"
    after = json.loads(fwmodel("status", "--json", hal=f"fake:{flash}").stdout)
    assert after["boot_count"] == 3 and after["os_version"] == "24.03"
    assert after["slots"]["store"]["image"]["name"] == "certstore-2025-02"


def test_serve_api_refuses_an_address_off_loopback(device_lab: Lab, tmp_path: Path) -> None:
    flash = provisioned(device_lab, tmp_path)
    for listen in ("0.0.0.0:0", "192.168.35.2:443", "example.com:80", "127.0.0.1:99999", "8443"):
        result = fwmodel("serve-api", "--listen", listen, hal=f"fake:{flash}")
        assert result.returncode == 2 and result.stdout == "", result
        assert len(result.stderr.splitlines()) == 1 and "--listen" in result.stderr


def test_serve_api_holds_the_device_and_stops_cleanly_on_ctrl_c(
        served: Served, device_lab: Lab, tmp_path: Path) -> None:
    busy = fwmodel("--wait", "0", "status", hal=f"fake:{flash_of(served)}")
    assert busy.returncode == 5 and "device busy" in busy.stderr
    flash = provisioned(device_lab, tmp_path)
    second = Served.start(f"fake:{flash}", tmp_path)
    code, out, err = second.stop(signal.SIGINT)
    assert (code, err) == (0, "") and out.splitlines()[-1] == "stopped"
    assert not second.server.ca.exists() and not second.server.ca.parent.exists()
    assert fwmodel("status", hal=f"fake:{flash}").returncode == 0  # the lock is released


def test_served_from_the_python_board_agent(device_lab: Lab, api_python: Path,
                                            tmp_path: Path) -> None:
    flash = provisioned(device_lab, tmp_path)
    served = Served.start(f"emulator:{flash}", tmp_path)
    try:
        status, images = drive(api_python, served.server, [["device.get_device_status"],
                                                           ["image.get_images"]])
    finally:
        code, _, err = served.stop()
    assert isinstance(ok(status)["uptime"], int)
    assert store_of(ok(images))["images"][0]["uid"] == STORE_2024
    assert code == 0, err
