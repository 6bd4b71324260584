"""The files of an UpdateCertStore payload (docs/image-format.md, UpdateCertStore): regular
`certs/<Name>.pem` files, each holding exactly one PEM certificate. A file holding a bundle is
refused by every reader of store payloads (the device's TLS store, `imagetool show`, the
endpoint audit), never read as its first certificate."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from firmware_model.device.tls import DeviceStore
from firmware_model.errors import ImageFormatError
from firmware_model.image.build import build_package
from firmware_model.image.certstore import load_one_certificate, read_store_payload
from firmware_model.image.cramfs import build_cramfs
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from tests.firmware_model.devicelab import STORE_COMPONENT, stranger
from tools.audit.errors import BadInputError
from tools.audit.stores import load_store
from tools.describe import describe, render_text
from tools.pki import issue, new_key

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number:UserWarning")


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def roots() -> tuple[x509.Certificate, x509.Certificate]:
    return (issue("Bundle Root X", new_key(), ca=True), issue("Bundle Root Y", new_key(), ca=True))


@pytest.fixture(scope="module")
def bundle_payload(roots: tuple[x509.Certificate, x509.Certificate]) -> bytes:
    """A store whose one file, certs/Bundle.pem, holds two roots."""
    return build_cramfs({"certs/Bundle.pem": _pem(roots[0]) + _pem(roots[1])})


def test_a_store_file_holding_two_certificates_is_refused_not_read_in_part(
        bundle_payload: bytes) -> None:
    with pytest.raises(ImageFormatError, match=r"^certs/Bundle.pem holds 2 certificates, not "
                                                r"one$"):
        read_store_payload(bundle_payload)


def test_a_store_file_with_another_pem_block_beside_its_certificate_is_refused(
        roots: tuple[x509.Certificate, x509.Certificate]) -> None:
    key = new_key().private_bytes(serialization.Encoding.PEM,  # made here, never committed
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    payload = build_cramfs({"certs/Root.pem": _pem(roots[0]) + key})
    with pytest.raises(ImageFormatError, match=r"certs/Root.pem holds 2 PEM blocks "
                                               r"\(CERTIFICATE, PRIVATE KEY\), not one"):
        read_store_payload(payload)


def test_a_store_file_may_carry_text_around_its_one_certificate(
        roots: tuple[x509.Certificate, x509.Certificate]) -> None:
    text = b"# Bundle Root X, as openssl x509 -text prints it\n" + _pem(roots[0]) + b"\nend\n"
    assert read_store_payload(build_cramfs({"certs/X.pem": text})) == [("X", roots[0])]


def test_store_names_are_free_text_but_not_empty(
        roots: tuple[x509.Certificate, x509.Certificate]) -> None:
    payload = build_cramfs({"certs/my root (lab).pem": _pem(roots[0]), "certs/Y.pem":
                            _pem(roots[1])})
    assert [name for name, _ in read_store_payload(payload)] == ["Y", "my root (lab)"]
    with pytest.raises(ImageFormatError, match=r"store holds 'certs/.pem', not certs/<Name>.pem"):
        read_store_payload(build_cramfs({"certs/.pem": _pem(roots[0])}))


@pytest.mark.parametrize(("files", "reason"), [
    ({"README": b"hello"}, "store holds 'README', not certs/<Name>.pem"),
    ({"certs/a.crt": b"x"}, "store holds 'certs/a.crt', not certs/<Name>.pem"),
    ({"certs/sub/a.pem": b"x"}, "store holds 'certs/sub/a.pem', not certs/<Name>.pem"),
    ({"certs/Der.pem": b"\x30\x82\x01\x00"}, "certs/Der.pem is not a PEM certificate"),
], ids=["file-at-the-top", "not-pem-suffix", "nested-folder", "der-in-a-pem-file"])
def test_only_pem_certificate_files_directly_in_certs(
        roots: tuple[x509.Certificate, x509.Certificate], files: dict[str, bytes],
        reason: str) -> None:
    payload = build_cramfs({"certs/Good.pem": _pem(roots[0]), **files})
    with pytest.raises(ImageFormatError, match=reason.replace("(", r"\(")):
        read_store_payload(payload)


def test_the_device_tls_store_and_imagetool_show_refuse_a_bundle_file(
        bundle_payload: bytes) -> None:
    with pytest.raises(ImageFormatError, match="holds 2 certificates"):
        DeviceStore.from_payload(bundle_payload)
    image = build_package(bundle_payload, image_type=ImageType.UpdateCertStore,
                          component_id=STORE_COMPONENT, image_id=STORE_COMPONENT,
                          signer=stranger(), name="bundle", security_version=2)
    info = describe(parse_package(image))
    assert "certificates" not in info
    assert info["payload_error"] == "certs/Bundle.pem holds 2 certificates, not one"
    assert render_text(info).endswith(
        "  Payload: could not be decoded (certs/Bundle.pem holds 2 certificates, not one)")


def test_the_endpoint_audit_refuses_a_store_image_with_a_bundle_file(
        bundle_payload: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bundle.imagepackage"
    path.write_bytes(build_package(bundle_payload, image_type=ImageType.UpdateCertStore,
                                   component_id=STORE_COMPONENT, image_id=STORE_COMPONENT,
                                   signer=stranger(), name="bundle"))
    with pytest.raises(BadInputError, match="holds 2 certificates, not one"):
        load_store(path)


def test_one_certificate_files_elsewhere_refuse_a_bundle_too(
        roots: tuple[x509.Certificate, x509.Certificate]) -> None:
    """`--cert`, recipe certificates, signer certificates: `load_one_certificate`."""
    with pytest.raises(ImageFormatError, match=r"^signer.pem holds 2 certificates, not one$"):
        load_one_certificate(_pem(roots[0]) + _pem(roots[1]), "signer.pem")
    assert load_one_certificate(_pem(roots[1]), "signer.pem") == roots[1]
