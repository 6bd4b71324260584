"""TLS from the device: real handshakes with servers on 127.0.0.1, judged at the device's clock."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

import pytest

from firmware_model.device.model import Device
from firmware_model.device.provision import FactoryImages
from firmware_model.device.status import device_status
from firmware_model.errors import TlsError
from hal.soft.machine import SoftwareMachine
from tests.firmware_model.devicelab import SMALL, Lab
from tests.firmware_model.tlslab import Authority, server_context, tls_server

BALTIMORE_END = dt.datetime(2025, 5, 12, 23, 59, tzinfo=dt.UTC)
FEB_2025 = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
JUNE_2025 = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def old_root() -> Authority:
    """A lab root that expires when Baltimore CyberTrust Root did (long past, in real time)."""
    return Authority.root("Lab Baltimore stand-in", not_after=BALTIMORE_END)


@pytest.fixture(scope="module")
def new_root() -> Authority:
    return Authority.root("Lab DigiCert G2 stand-in")


def device_trusting(lab: Lab, *roots: Authority, at: dt.datetime = FEB_2025) -> Device:
    machine = SoftwareMachine(None, SMALL, wall_start=at)
    device = Device(machine)
    store = lab.store([(f"LabRoot{i}", r.certificate) for i, r in enumerate(roots)], 1)
    device.provision(FactoryImages(lab.factory.root_hash, lab.image("keystore-2024"), store))
    return device


def set_clock(device: Device, when: dt.datetime) -> None:
    assert isinstance(device.machine, SoftwareMachine)
    device.machine.clock.set_wall(when)


def test_a_chain_to_a_store_root_connects(device_lab: Lab, new_root: Authority,
                                          tmp_path: Path) -> None:
    device = device_trusting(device_lab, new_root)
    key, leaf = new_root.server()
    with tls_server(server_context(tmp_path, key, [leaf])) as port:
        session = device.connect("127.0.0.1", port)
    assert session.root_name == "LabRoot0"
    assert [c.subject for c in session.chain] == [leaf.subject, new_root.certificate.subject]
    assert session.version.startswith("TLS")


def test_a_chain_through_an_intermediate_connects(device_lab: Lab, new_root: Authority,
                                                  tmp_path: Path) -> None:
    device = device_trusting(device_lab, new_root)
    issuing = new_root.intermediate("Lab Issuing CA")
    key, leaf = issuing.server(["localhost"])
    with tls_server(server_context(tmp_path, key, [leaf, issuing.certificate])) as port:
        session = device.connect("127.0.0.1", port, server_name="localhost")
    assert len(session.chain) == 3 and session.root_name == "LabRoot0"


def test_a_chain_to_a_root_not_in_the_store_fails(device_lab: Lab, new_root: Authority,
                                                  tmp_path: Path) -> None:
    device = device_trusting(device_lab, new_root)
    key, leaf = Authority.root("Lab Unknown Root").server()
    with tls_server(server_context(tmp_path, key, [leaf])) as port, \
            pytest.raises(TlsError, match="unable to get local issuer"):
        device.connect("127.0.0.1", port)
    assert "[tls]" in device.machine.console.lines()[-1]


def test_an_expired_root_fails_at_the_device_clock_not_the_host_clock(
    device_lab: Lab, old_root: Authority, tmp_path: Path
) -> None:
    assert dt.datetime.now(dt.UTC) > BALTIMORE_END  # the host's clock: the root is long expired
    device = device_trusting(device_lab, old_root)
    key, leaf = old_root.server()
    with tls_server(server_context(tmp_path, key, [leaf])) as port:
        assert device.connect("127.0.0.1", port).root_name == "LabRoot0"  # February 2025
        set_clock(device, JUNE_2025)
        with pytest.raises(TlsError, match=r"unable to get local issuer.*2025-06-01"):
            device.connect("127.0.0.1", port)
    assert device_status(device)["store"] == {"label": "OS trusted root store", "certificates": [
        {**device.store.roots[0].to_json(JUNE_2025), "valid_at_device_time": False}]}


def test_a_leaf_not_yet_valid_at_the_device_clock_fails(
    device_lab: Lab, new_root: Authority, tmp_path: Path
) -> None:
    device = device_trusting(device_lab, new_root)
    key, leaf = new_root.server(not_before=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    with tls_server(server_context(tmp_path, key, [leaf])) as port:
        with pytest.raises(TlsError, match="not valid at validation time"):
            device.connect("127.0.0.1", port)
        set_clock(device, dt.datetime(2025, 4, 1, tzinfo=dt.UTC))
        assert device.connect("127.0.0.1", port).root_name == "LabRoot0"


def test_a_certificate_for_another_name_fails(device_lab: Lab, new_root: Authority,
                                              tmp_path: Path) -> None:
    device = device_trusting(device_lab, new_root)
    key, leaf = new_root.server(["other.example"])
    with tls_server(server_context(tmp_path, key, [leaf])) as port, \
            pytest.raises(TlsError, match=r"mismatch|not valid for"):
        device.connect("127.0.0.1", port)


def test_nothing_listening_is_a_tls_error(device_lab: Lab, new_root: Authority) -> None:
    device = device_trusting(device_lab, new_root)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TlsError, match="cannot connect"):
        device.connect("127.0.0.1", port)


def test_the_ssl_context_alone_judges_at_the_device_clock(
    device_lab: Lab, old_root: Authority, tmp_path: Path
) -> None:
    device = device_trusting(device_lab, old_root)
    key, leaf = old_root.server()
    with tls_server(server_context(tmp_path, key, [leaf])) as port:
        context = device.ssl_context()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.recv(64).startswith(b"hello")
        set_clock(device, JUNE_2025)
        late = device.ssl_context()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                pytest.raises(ssl.SSLCertVerificationError):
            late.wrap_socket(raw, server_hostname="127.0.0.1")
