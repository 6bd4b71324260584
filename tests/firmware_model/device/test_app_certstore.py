"""The app certificate store (Applibs CertStore) against Microsoft's documented numbers: 24 KiB
(24,514 bytes free when empty), 8,192 bytes a certificate, identifiers of 1-16 characters from
[A-Za-z0-9._-], one identifier space, MoveCertificate, and the errno of each refusal. On the
flash of an in-memory software machine, no device needed."""

from __future__ import annotations

import errno
import string
from collections.abc import Callable, Iterator

import pytest

from firmware_model.device.app_certstore import (
    AVAILABLE_WHEN_EMPTY,
    CAPACITY,
    AppCertStore,
    CertKind,
    Refusal,
)
from firmware_model.device.app_certstore_area import AppStoreArea
from firmware_model.device.flash_layout import FlashLayout
from firmware_model.errors import CertStoreError
from hal.soft.machine import SoftwareMachine
from policy.errors import BadInput, Refused
from tests.firmware_model.certlab import (
    NOT_AFTER,
    NOT_BEFORE,
    Client,
    certificate,
    der,
    der_of_size,
    pem,
)
from tests.firmware_model.devicelab import SMALL

ALLOWED = string.ascii_letters + string.digits + "._-"


@pytest.fixture
def machine() -> Iterator[SoftwareMachine]:
    with SoftwareMachine(None, SMALL) as soft:
        yield soft


@pytest.fixture
def store(machine: SoftwareMachine) -> AppCertStore:
    layout = FlashLayout.for_geometry(SMALL)
    return AppCertStore(machine.flash, AppStoreArea(layout.app_store))


@pytest.fixture(scope="module")
def client() -> Client:
    return Client.make()


def refused(call: Callable[[], object], code: int, store: AppCertStore | None = None
            ) -> CertStoreError:
    """`call` raises a CertStoreError with errno `code`, and the flash is as it was."""
    before = store.flash.hash(0, SMALL.size) if store is not None else None
    with pytest.raises(CertStoreError) as caught:
        call()
    assert caught.value.errno == code, caught.value
    assert caught.value.errno_name == errno.errorcode[code]
    assert str(caught.value).startswith(f"certstore: {errno.errorcode[code]}: ")
    if store is not None:
        assert store.flash.hash(0, SMALL.size) == before
    return caught.value


# --- space: 24 KiB, 24,514 bytes free when empty ---------------------------------------------


def test_an_empty_store_reports_24514_bytes_as_a_device_does_in_microsofts_tests(
        store: AppCertStore) -> None:
    assert (store.available_space(), store.count(), store.identifiers()) == (24514, 0, [])
    assert CAPACITY == 24 * 1024 and AVAILABLE_WHEN_EMPTY == 24514


def test_the_store_fills_to_exactly_its_space_and_one_byte_more_is_ENOSPC(
        store: AppCertStore) -> None:
    store.install_root_ca("one", der_of_size(8192))
    store.install_root_ca("two", der_of_size(8192))
    assert store.available_space() == 24514 - 2 * 8192 == 8130
    error = refused(lambda: store.install_root_ca("three", der_of_size(8131)), errno.ENOSPC,
                    store)
    assert error.reason == "no-space" and isinstance(error, Refused)
    store.install_root_ca("three", der_of_size(8130))
    assert store.available_space() == 0 and store.count() == 3
    refused(lambda: store.install_root_ca("four", der(certificate())), errno.ENOSPC, store)


def test_a_certificate_takes_exactly_the_bytes_of_its_blobs(store: AppCertStore,
                                                           client: Client) -> None:
    blob = pem(certificate())
    store.install_root_ca("root", blob)
    assert store.available_space() == 24514 - len(blob)
    key = client.key_pem(b"secret")
    store.install_client("wifi", pem(client.cert), key, b"secret")
    taken = len(pem(client.cert)) + len(key) + len(b"secret")
    assert store.info("wifi").size == taken
    assert store.available_space() == 24514 - len(blob) - taken
    store.delete("root")
    store.delete("wifi")
    assert store.available_space() == 24514


def test_a_replace_is_judged_against_the_space_once_the_old_certificate_is_gone(
        store: AppCertStore) -> None:
    store.install_root_ca("one", der_of_size(8192))
    store.install_root_ca("two", der_of_size(8192))
    store.install_root_ca("three", der_of_size(8130))
    store.install_root_ca("one", der_of_size(8192, "Other"))  # full store, same size: fits
    refused(lambda: store.install_root_ca("three", der_of_size(8131)), errno.ENOSPC, store)
    store.install_root_ca("three", der_of_size(1000))
    assert store.available_space() == 7130


# --- sizes and identifiers --------------------------------------------------------------------


def test_a_certificate_of_8192_bytes_installs_and_8193_is_ERANGE(store: AppCertStore) -> None:
    store.install_root_ca("max", der_of_size(8192))
    assert store.info("max").size == 8192
    error = refused(lambda: store.install_root_ca("over", der_of_size(8193)), errno.ERANGE, store)
    assert error.reason == "certificate-length" and isinstance(error, BadInput)
    refused(lambda: store.install_root_ca("empty", b""), errno.ERANGE, store)


def test_an_identifier_of_16_characters_installs_and_17_or_none_is_ERANGE(
        store: AppCertStore) -> None:
    blob = der(certificate())
    store.install_root_ca("a" * 16, blob)
    assert store.identifiers() == ["a" * 16]
    for identifier in ("a" * 17, ""):
        error = refused(lambda i=identifier: store.install_root_ca(i, blob), errno.ERANGE, store)
        assert error.reason == "identifier-length"
    refused(lambda: store.move("a" * 16, "b" * 17), errno.ERANGE, store)
    refused(lambda: store.move("b" * 17, "a"), errno.ERANGE, store)


def test_every_identifier_character_outside_the_allowed_set_is_EINVAL(
        store: AppCertStore) -> None:
    blob = der(certificate())
    store.install_root_ca(ALLOWED[:16], blob)
    store.install_root_ca(ALLOWED[-16:], blob)  # digits, '.', '_', '-'
    forbidden = [chr(c) for c in range(128) if chr(c) not in ALLOWED]  # controls, space, marks
    forbidden += ["é", "\uff21", "٣", "ß", "\u00a0", "\u200b", "😀"]  # letters, digits, spaces
    for char in forbidden:  # beyond ASCII: what [A-Za-z0-9] does not hold though \w or \d would
        error = refused(lambda c=char: store.install_root_ca(f"id{c}x", blob), errno.EINVAL,
                        store)
        assert error.reason == "identifier-characters", repr(char)
    refused(lambda: store.move(ALLOWED[:16], "a/b"), errno.EINVAL, store)
    assert store.count() == 2


def test_a_too_long_identifier_is_ERANGE_before_its_characters_are_judged(
        store: AppCertStore) -> None:
    refused(lambda: store.install_root_ca("/" * 17, der(certificate())), errno.ERANGE, store)


# --- one identifier space; move -------------------------------------------------------------


def test_installing_an_existing_identifier_replaces_it_whatever_its_type(
        store: AppCertStore, client: Client) -> None:
    assert store.install_root_ca("id", der(certificate("First"))) is None
    replaced = store.install_client("id", pem(client.cert), client.key_pem())
    assert replaced is CertKind.ROOT_CA
    assert (store.count(), store.info("id").kind) == (1, CertKind.CLIENT)
    assert store.install_root_ca("id", pem(certificate("Second"))) is CertKind.CLIENT
    info = store.info("id")
    assert (info.kind, info.subject_name) == (CertKind.ROOT_CA, "/C=US/O=Lab/CN=Second")
    assert store.available_space() == 24514 - len(pem(certificate("Second")))


def test_a_move_onto_a_new_identifier_renames_the_certificate(store: AppCertStore,
                                                              client: Client) -> None:
    store.install_client("old", pem(client.cert), client.key_pem())
    free = store.available_space()
    assert store.move("old", "new") is None
    assert store.identifiers() == ["new"] and store.info("new").kind is CertKind.CLIENT
    assert store.available_space() == free
    refused(lambda: store.info("old"), errno.ENOENT)


def test_a_move_onto_an_existing_identifier_replaces_it_and_frees_its_space(
        store: AppCertStore, client: Client) -> None:
    store.install_root_ca("dst", der_of_size(2000))
    store.install_client("src", pem(client.cert), client.key_pem())
    free = store.available_space()
    assert store.move("src", "dst") is CertKind.ROOT_CA
    assert store.identifiers() == ["dst"]
    assert store.info("dst").subject_name == "/C=US/O=Lab/CN=client"
    assert store.available_space() == free + 2000


def test_a_missing_source_or_certificate_to_delete_is_ENOENT(store: AppCertStore) -> None:
    store.install_root_ca("here", der(certificate()))
    for call in (lambda: store.move("gone", "here"), lambda: store.delete("gone"),
                 lambda: store.info("gone"), lambda: store.subject_name("gone")):
        error = refused(call, errno.ENOENT, store)
        assert error.reason == "not-found" and isinstance(error, Refused)
    assert store.identifiers() == ["here"]


def test_a_move_onto_its_own_identifier_changes_nothing(store: AppCertStore) -> None:
    store.install_root_ca("same", der(certificate()))
    before = store.flash.hash(0, SMALL.size)
    assert store.move("same", "same") is None
    assert store.flash.hash(0, SMALL.size) == before


# --- reading: count, index, names, dates ---------------------------------------------------


def test_identifiers_are_indexed_in_byte_order_and_an_index_past_the_count_is_ERANGE(
        store: AppCertStore) -> None:
    for identifier in ("b", "B", "a-1", "_z"):
        store.install_root_ca(identifier, der(certificate()))
    assert [store.identifier_at(i) for i in range(store.count())] == ["B", "_z", "a-1", "b"]
    for index in (4, -1):
        error = refused(lambda i=index: store.identifier_at(i), errno.ERANGE)
        assert error.reason == "index-range"


def test_names_and_validity_read_as_the_device_reports_them(store: AppCertStore,
                                                           client: Client) -> None:
    store.install_client("wifi", der(client.cert), client.key_der())
    assert store.subject_name("wifi") == "/C=US/O=Lab/CN=client"
    assert store.issuer_name("wifi") == "/CN=Lab Root"
    assert (store.not_before("wifi"), store.not_after("wifi")) == (NOT_BEFORE, NOT_AFTER)
    assert store.info("wifi").to_json() == {
        "id": "wifi", "type": "client", "bytes": len(der(client.cert)) + len(client.key_der()),
        "subject_name": "/C=US/O=Lab/CN=client", "issuer_name": "/CN=Lab Root",
        "not_before": "2024-03-01T12:30:00Z", "not_after": "2034-03-01T12:30:00Z"}


# --- what a certificate, a key and a password must be --------------------------------------


def test_a_blob_that_is_not_one_certificate_is_EINVAL(store: AppCertStore) -> None:
    one = pem(certificate())
    for blob in (b"not a certificate", der(certificate()) + b"\0", one + one,
                 b"junk\n" + one, one.replace(b"CERTIFICATE", b"X509 CRL"), b"\xff" * 100):
        error = refused(lambda b=blob: store.install_root_ca("id", b), errno.EINVAL, store)
        assert error.reason == "certificate-invalid"
    store.install_root_ca("spaced", b"\n  " + one + b"\n\n")
    assert store.count() == 1


def test_a_client_key_that_does_not_fit_is_refused_with_its_errno(
        store: AppCertStore, client: Client) -> None:
    cert = pem(client.cert)
    cases = [
        (lambda: store.install_client("c", cert, b""), errno.ERANGE, "key-length"),
        (lambda: store.install_client("c", cert, b"k" * 8193), errno.ERANGE, "key-length"),
        (lambda: store.install_client("c", cert, b"not a key"), errno.EINVAL, "key-invalid"),
        (lambda: store.install_client("c", cert, Client.make().key_pem()), errno.EINVAL,
         "key-mismatch"),
        (lambda: store.install_client("c", cert, client.key_pem(), b"pw"), errno.EINVAL,
         "password-not-allowed"),
        (lambda: store.install_client("c", cert, client.key_pem(b"right")), errno.EINVAL,
         "key-password"),
        (lambda: store.install_client("c", cert, client.key_pem(b"right"), b"wrong"),
         errno.EINVAL, "key-password"),
        (lambda: store.install_client("c", cert, client.key_pem(b"right"), b"p" * 257),
         errno.ERANGE, "password-length"),
        (lambda: store.install_client("c", der_of_size(8193), client.key_pem()), errno.ERANGE,
         "certificate-length"),
    ]
    for call, code, reason in cases:
        assert refused(call, code, store).reason == reason
    password = b"p" * 256
    store.install_client("c", cert, client.key_pem(password), password)
    assert store.info("c").size == len(cert) + len(client.key_pem(password)) + 256


def test_each_refusal_has_the_errno_and_kind_its_table_gives() -> None:
    for refusal in Refusal:
        error = refusal.error("x")
        assert error.errno == refusal.errno and error.reason == refusal.value[0]
        assert isinstance(error, BadInput) == (refusal.errno in (errno.EINVAL, errno.ERANGE))
        assert isinstance(error, Refused) == (refusal.errno in (errno.ENOENT, errno.ENOSPC))
