"""The February 2025 store change, rehearsed: a device trusting two lab roots (stand-ins for
Baltimore CyberTrust Root and DigiCert Global Root G2: nobody can sign with the real ones)
next to the real roots, updated over an HTTP feed on 127.0.0.1 while an app defers; after the
reboot the Baltimore-style endpoint fails and the other still works."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from firmware_model.agent.feed import MANIFEST_NAME, image_file_name, open_feed
from firmware_model.agent.updater import UpdateOutcome, Updater
from firmware_model.device.deferral import DeferringApp
from firmware_model.device.model import Device
from firmware_model.device.provision import FactoryImages
from firmware_model.errors import TlsError
from firmware_model.image.package import parse_package
from hal.soft.machine import SoftwareMachine
from tests.firmware_model.devicelab import SMALL, Lab
from tests.firmware_model.tlslab import Authority, feed_server, server_context, tls_server


def endpoint(root: Authority, folder: Path) -> ssl.SSLContext:
    key, leaf = root.server()
    return server_context(folder, key, [leaf])


def test_the_baltimore_style_endpoint_breaks_and_the_other_keeps_working(
    device_lab: Lab, tmp_path: Path
) -> None:
    baltimore = Authority.root("Lab Baltimore stand-in")
    digicert = Authority.root("Lab DigiCert G2 stand-in")
    old = device_lab.store([*device_lab.roots("certstore-2024"),
                            ("LabBaltimore", baltimore.certificate),
                            ("LabDigiCertG2", digicert.certificate)], 1)
    new = device_lab.store([*device_lab.roots("certstore-2025-02"),
                            ("LabDigiCertG2", digicert.certificate)], 2)
    channel = tmp_path / "feeds" / "Retail"
    channel.mkdir(parents=True)
    (channel / MANIFEST_NAME).write_bytes(device_lab.manifest([new]))
    (channel / image_file_name(parse_package(new).image_id)).write_bytes(new)

    device = Device(SoftwareMachine(None, SMALL))
    device.provision(FactoryImages(device_lab.factory.root_hash,
                                   device_lab.image("keystore-2024"), old))
    device.bus.register(DeferringApp(60))
    with tls_server(endpoint(baltimore, tmp_path / "b")) as old_port, \
            tls_server(endpoint(digicert, tmp_path / "d")) as new_port:
        assert device.connect("127.0.0.1", old_port).root_name == "LabBaltimore"
        assert device.connect("127.0.0.1", new_port).root_name == "LabDigiCertG2"
        with feed_server(tmp_path / "feeds") as url:
            result = Updater(device).check_for_update(open_feed(url, "Retail"))
        assert result.outcome is UpdateOutcome.INSTALLED and result.deferred_minutes == 60
        with pytest.raises(TlsError, match="unable to get local issuer"):
            device.connect("127.0.0.1", old_port)
        assert device.connect("127.0.0.1", new_port).root_name == "LabDigiCertG2"
    names = device.store.names
    assert "Baltimore_CyberTrust_Root" not in names and "DigiCert_Global_Root_G2" in names
    assert "Baltimore_CyberTrust_Root" in [name for name, _ in device_lab.roots("certstore-2024")]
