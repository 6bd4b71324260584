"""The readers derived from the construct declarations, against the declarations themselves.

The declarations (`sections.SECTION_FORMATS`, `manifest.Manifest`, `keystore.KeystoreHeader` and
`KeyList`) are the specification; the readers here in the tests parse them with construct
(`construct_reference.parse_prefix` / `parse_strict`, uncached key loading). For
arbitrary, built, truncated, extended and bit-flipped inputs, both read the same values or both
fail with the same error text; an error's offset from the struct reader is the start of the
field at fault, never past where construct's stream stopped.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import certifi
import pytest
from construct import ConstructError
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from firmware_model.errors import (
    FwModelError,
    ImageFormatError,
    UntrustedSignerError,
    WrongImageTypeError,
)
from firmware_model.image.build import build_package
from firmware_model.image.certstore import BAD_CERTIFICATE, real_world_roots
from firmware_model.image.keystore import (
    FLAG_REVOKED,
    KEYSTORE_SIGNING_ROLE,
    KeyList,
    Keystore,
    KeystoreHeader,
    KeystorePayload,
    TrustedKey,
    build_keystore_payload,
    has_keystore_signing_role,
    read_keystore_payload,
    root_key_hash,
)
from firmware_model.image.manifest import Manifest, ManifestEntry, build_manifest, read_manifest
from firmware_model.image.package import Section, decode_section, locate
from firmware_model.image.sections import (
    SECTION_DECODERS,
    SECTION_FORMATS,
    ImageType,
    SectionId,
    expected_length,
    image_type_name,
    section_tag,
)
from firmware_model.image.signing import Signer, thumbprint, verify_raw
from firmware_model.trust.chain import open_keystore
from tests.firmware_model.construct_reference import parse_prefix, parse_strict, plain
from tools.pki import issue, new_key

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
ABI_LISTS = (SectionId.ABIDepends, SectionId.ABIProvides)

# --- the construct readers (what the library did before the struct readers) ---------------


def construct_section(section_id: int, raw: bytes, offset: int) -> Section:
    """`package.decode_section` as it was: the declaration's parse."""
    fmt = SECTION_FORMATS.get(section_id)
    if fmt is None:
        return Section(section_id, raw, None, offset)
    want = expected_length(section_id, raw)
    if want != len(raw):
        raise ImageFormatError(
            f"'{section_tag(section_id)}' section is {len(raw)} bytes, expected {want}", offset)
    try:
        fields = plain(fmt.parse(raw))
    except (ConstructError, UnicodeDecodeError) as error:
        raise ImageFormatError(
            f"'{section_tag(section_id)}' section does not decode ({error})", offset) from None
    return Section(section_id, raw, fields, offset)


def construct_manifest(payload: bytes) -> list[ManifestEntry]:
    value = parse_strict(Manifest, payload, "manifest")
    return [ManifestEntry(e["image_id"], e["component_id"], e["image_type"],
                          e["image_file_size"], e["security_version"], e["sha256"])
            for e in value["entries"]]


def _load_key(der: bytes, what: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise ImageFormatError(f"{what} is not a DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ImageFormatError(f"{what} is not an EC key")
    return key


def _construct_header(payload: bytes) -> tuple[ec.EllipticCurvePublicKey, x509.Certificate, int]:
    value, end = parse_prefix(KeystoreHeader, payload, "keystore header")
    try:
        signer = x509.load_der_x509_certificate(value["signer_certificate"])
    except BAD_CERTIFICATE:
        raise ImageFormatError("keystore signer certificate is not DER X.509") from None
    return _load_key(value["root_public_key"], "keystore root key"), signer, end


def _construct_keys(payload: bytes, start: int) -> tuple[TrustedKey, ...]:
    value = parse_strict(KeyList, payload[start:], "keystore key list", start)
    return tuple(
        TrustedKey(bytes(k["thumbprint"]), _load_key(k["public_key"], "keystore key"),
                   frozenset(t for t in range(32) if k["image_types"] >> t & 1),
                   bool(k["flags"] & FLAG_REVOKED))
        for k in value["keys"])


def construct_keystore_payload(payload: bytes) -> Keystore:
    root, signer, end = _construct_header(payload)
    return Keystore(root, signer, _construct_keys(payload, end))


def _issued_by_root(certificate: x509.Certificate, root: ec.EllipticCurvePublicKey) -> None:
    try:
        algorithm = certificate.signature_hash_algorithm
        if algorithm is None:
            raise UntrustedSignerError("keystore signer certificate names no hash algorithm")
        root.verify(certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(algorithm))
    except (InvalidSignature, UnsupportedAlgorithm):
        raise UntrustedSignerError("keystore signer is not certified by the root key") from None


def construct_open_keystore(data: bytes, fused: bytes) -> Keystore:
    """`keystore.open_keystore` as it was (construct readers, nothing memoized, cryptography's
    fingerprint): its checks in its order; the keystore it returns."""
    layout = locate(data)
    image_type = int.from_bytes(layout.section_bytes(data, SectionId.Identity)[:2], "little")
    if image_type != ImageType.TrustedKeystore:
        raise WrongImageTypeError(
            f"expected a TrustedKeystore image, got {image_type_name(image_type)}")
    payload = data[: layout.metadata_start]
    root, signer, keys_start = _construct_header(payload)
    if root_key_hash(root) != fused:
        raise UntrustedSignerError("keystore root key does not match the fused root-key hash")
    _issued_by_root(signer, root)
    if not has_keystore_signing_role(signer):
        raise UntrustedSignerError(
            "keystore signer certificate lacks the keystore-signing role (extended key usage "
            f"{KEYSTORE_SIGNING_ROLE.dotted_string})")
    if thumbprint(signer) != layout.section_bytes(data, SectionId.Signature)[:20]:
        raise UntrustedSignerError("keystore is not signed by the certificate it carries")
    signer_key = signer.public_key()
    assert isinstance(signer_key, ec.EllipticCurvePublicKey)
    verify_raw(signer_key, data[: layout.metadata_end], data[layout.metadata_end :])
    for sid in layout.order:
        construct_section(sid, layout.section_bytes(data, sid), layout.spans[sid][0] - 4)
    return Keystore(root, signer, _construct_keys(payload, keys_start))


# --- comparing outcomes -------------------------------------------------------------------

_OFFSET = re.compile(r" at offset 0x[0-9a-f]+$")


def outcome(read: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or (error type name, (message without offset, offset))."""
    try:
        return "ok", read()
    except FwModelError as error:
        offset = getattr(error, "offset", None)
        return type(error).__name__, (_OFFSET.sub("", str(error)), offset)


def assert_agree(fast: Callable[[], Any], slow: Callable[[], Any]) -> None:
    """Same value, or the same error type and text with the struct reader's offset at or
    before construct's (the start of the field construct's stream stopped in)."""
    ours, theirs = outcome(fast), outcome(slow)
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "ok":
        assert ours[1] == theirs[1]
        return
    (message, offset), (their_message, their_offset) = ours[1], theirs[1]
    assert message == their_message
    assert (offset is None) == (their_offset is None), (ours, theirs)
    if offset is not None:
        assert offset <= their_offset, (ours, theirs)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@st.composite
def damaged(draw: st.DrawFn, valid: bytes) -> bytes:
    """`valid` truncated, extended (zeros or anything) or with one bit flipped."""
    how = draw(st.sampled_from(["truncate", "extend", "flip"]))
    if how == "truncate":
        return valid[: draw(st.integers(0, len(valid)))]
    if how == "extend":
        return valid + draw(st.one_of(st.binary(min_size=1, max_size=9),
                                      st.integers(1, 8).map(lambda n: b"\0" * n)))
    return _flip(valid, draw(st.integers(0, len(valid) * 8 - 1)))


# --- sections -----------------------------------------------------------------------------

FIXED = sorted(sid for sid in SECTION_FORMATS if sid not in ABI_LISTS)


def _abi_list(count: int, pairs: bytes) -> bytes:
    return count.to_bytes(4, "little") + pairs


abi_raw = st.integers(0, 12).flatmap(
    lambda n: st.binary(min_size=8 * n, max_size=8 * n).map(lambda pairs: _abi_list(n, pairs)))
# DB names: any 32 bytes are rarely UTF-8; mix in encoded text, NUL padded or not, and
# pieces that hit the edges (NULs anywhere, a two-byte character whole or cut, a stray byte)
debug_names = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.text(max_size=12).map(str.encode).filter(lambda b: len(b) <= 32).flatmap(
        lambda name: st.binary(max_size=32 - len(name)).map(
            lambda tail: (name + tail + b"\0" * 32)[:32])),
    st.lists(st.sampled_from([b"\0", b"a", b"\xc3", b"\xa9", b"\xff"]), max_size=32).map(
        lambda pieces: (b"".join(pieces) + b"\0" * 32)[:32]),
)


@st.composite
def section_data(draw: st.DrawFn) -> tuple[int, bytes]:
    """A known section id and data of the size its declaration has."""
    sid = draw(st.sampled_from(sorted(SECTION_FORMATS)))
    if sid in ABI_LISTS:
        return sid, draw(abi_raw)
    if sid == SectionId.Debug:
        return sid, draw(st.binary(min_size=8, max_size=8)) + draw(debug_names)
    size = expected_length(sid, b"")
    assert size is not None
    return sid, draw(st.binary(min_size=size, max_size=size))


def _declared(sid: int, raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", plain(SECTION_FORMATS[sid].parse(raw))
    except ConstructError:
        return "fails", None


def _decoded(sid: int, raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", SECTION_DECODERS[sid](raw)
    except ValueError:
        return "fails", None


@SETTINGS
@given(section_data())
@example((SectionId.Debug, b"\0" * 8 + b"\xff" + b"\0" * 31))
@example((SectionId.Debug, b"\0" * 8 + b"ok\0\xc3" + b"\0" * 28))
@example((SectionId.Debug, b"\0" * 8 + b"a\0b" + b"\0" * 29))
@example((SectionId.Debug, b"\0" * 8 + b"\0ab" + b"\0" * 29))
@example((SectionId.ABIProvides, _abi_list(0, b"")))
def test_each_section_decodes_as_its_declaration(case: tuple[int, bytes]) -> None:
    sid, raw = case
    ours, declared = _decoded(sid, raw), _declared(sid, raw)
    assert ours[0] == declared[0]
    if ours[0] == "ok":
        assert ours[1] == declared[1]
        assert list(ours[1]) == list(declared[1])  # same keys in the same order
        assert [type(v) for v in ours[1].values()] == [type(v) for v in declared[1].values()]
    assert_agree(lambda: decode_section(sid, raw, 0x40), lambda: construct_section(sid, raw, 0x40))


@SETTINGS
@given(sid=st.sampled_from(sorted(SECTION_FORMATS)), raw=st.binary(max_size=48))
def test_sections_of_any_length_fail_alike(sid: int, raw: bytes) -> None:
    assert_agree(lambda: decode_section(sid, raw, 7), lambda: construct_section(sid, raw, 7))


def test_every_declared_section_has_a_decoder_and_a_size() -> None:
    assert set(SECTION_DECODERS) == set(SECTION_FORMATS)
    for sid in FIXED:
        assert expected_length(sid, b"") == SECTION_FORMATS[sid].sizeof()


# --- manifests ----------------------------------------------------------------------------

u32 = st.integers(0, 0xFFFF_FFFF)
entries = st.builds(ManifestEntry, image_id=st.uuids(), component_id=st.uuids(),
                    image_type=st.integers(0, 0xFFFF), size=u32, security_version=u32,
                    sha256=st.binary(min_size=32, max_size=32))
u64 = st.integers(0, 2**64 - 1)
abi_pairs = st.lists(st.fixed_dictionaries({"version": u32, "type": u32}), min_size=2,
                     max_size=2)
declared_entries = st.fixed_dictionaries({
    "image_id": st.uuids(), "component_id": st.uuids(), "image_type": st.integers(0, 0xFFFF),
    "partition_type": st.integers(0, 0xFFFF), "image_file_size": u32,
    "uncompressed_image_size": u32, "provides": abi_pairs, "depends": abi_pairs,
    "security_version": u32, "sha256": st.binary(min_size=32, max_size=32)})
manifests = st.one_of(
    st.builds(build_manifest, st.lists(entries, max_size=5), u64),
    # every field arbitrary, as the declaration builds it
    st.builds(lambda items, date: bytes(Manifest.build({"build_date": date, "entries": items})),
              st.lists(declared_entries, max_size=4), u64),
)


@SETTINGS
@given(manifests)
def test_built_manifests_read_alike(payload: bytes) -> None:
    assert read_manifest(payload) == construct_manifest(payload)
    assert read_manifest(memoryview(payload)) == construct_manifest(payload)


@SETTINGS
@given(manifests.flatmap(damaged))
def test_damaged_manifests_fail_alike(payload: bytes) -> None:
    assert_agree(lambda: read_manifest(payload), lambda: construct_manifest(payload))


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_as_a_manifest(payload: bytes) -> None:
    assert_agree(lambda: read_manifest(payload), lambda: construct_manifest(payload))


def test_manifest_errors_name_the_field_at_fault() -> None:
    payload = build_manifest([ManifestEntry(uuid.UUID(int=1), uuid.UUID(int=2), 22, 9, 1,
                                            bytes(32))])
    for cut, field, at in [(1, "version", 0), (5, "header_size", 4), (40, "component_id", 32),
                           (93, "security_version", 92)]:
        with pytest.raises(ImageFormatError, match=field) as caught:
            read_manifest(payload[:cut])
        assert caught.value.offset == at
    with pytest.raises(ImageFormatError, match="entry_size") as caught:
        read_manifest(payload[:6] + b"\x4c\x00" + payload[8:])
    assert caught.value.offset == 6


# --- keystores ----------------------------------------------------------------------------

_ROOT = new_key()
_ROOT_CERT = issue("Decoder Root", _ROOT, ca=True)
_SIGNING_KEY = new_key()
SIGNER = Signer(_SIGNING_KEY, issue("Decoder Keystore Signing", _SIGNING_KEY, (_ROOT_CERT, _ROOT),
                                    extended_usages=[KEYSTORE_SIGNING_ROLE]))
POOL = [new_key().public_key(), new_key().public_key(), new_key(ec.SECP384R1()).public_key()]
FUSED = root_key_hash(_ROOT.public_key())

trusted_keys = st.builds(TrustedKey, thumbprint=st.binary(min_size=20, max_size=20),
                         public_key=st.sampled_from(POOL),
                         image_types=st.frozensets(st.integers(0, 31)), revoked=st.booleans())
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
declared_keys = st.fixed_dictionaries({
    "thumbprint": st.binary(min_size=20, max_size=20), "image_types": u32, "flags": u32,
    "public_key": st.sampled_from([k.public_bytes(DER, SPKI) for k in POOL])})
keystore_payloads = st.one_of(
    st.builds(build_keystore_payload, st.sampled_from([_ROOT.public_key(), *POOL]),
              st.sampled_from([SIGNER.certificate, _ROOT_CERT]),
              st.lists(trusted_keys, max_size=4)),
    # every key field arbitrary, as the declaration builds it
    st.builds(lambda keys: bytes(KeystorePayload.build({
        "root_public_key": _ROOT.public_key().public_bytes(DER, SPKI),
        "signer_certificate": SIGNER.certificate.public_bytes(DER), "keys": keys})),
        st.lists(declared_keys, max_size=4)),
)


@SETTINGS
@given(keystore_payloads)
def test_built_keystores_read_alike(payload: bytes) -> None:
    assert read_keystore_payload(payload) == construct_keystore_payload(payload)


@SETTINGS
@given(keystore_payloads.flatmap(damaged))
def test_damaged_keystores_fail_alike(payload: bytes) -> None:
    assert_agree(lambda: read_keystore_payload(payload),
                 lambda: construct_keystore_payload(payload))


@SETTINGS
@given(st.binary(max_size=120).map(lambda b: b"KSTR\x01\0\0\0" + b) | st.binary(max_size=40))
def test_any_bytes_as_a_keystore(payload: bytes) -> None:
    assert_agree(lambda: read_keystore_payload(payload),
                 lambda: construct_keystore_payload(payload))


def test_padding_rule() -> None:
    """Up to 3 zero bytes may follow a payload when they end it on a multiple of 4."""
    manifest = build_manifest([])
    for tail in (b"\0", b"\0" * 3, b"\0" * 4, b"\0\1"):
        with pytest.raises(ImageFormatError, match="trailing") as caught:
            read_manifest(manifest + tail)
        assert caught.value.offset == len(manifest)
    key = TrustedKey(b"\3" * 20, POOL[0], frozenset({22}))
    payload = next(p for p in (build_keystore_payload(_ROOT.public_key(), SIGNER.certificate,
                                                      [key] * n) for n in range(4))
                   if len(p) % 4)  # each P-256 key adds 121 bytes: one of 4 lengths is odd
    padding = b"\0" * (-len(payload) % 4)
    assert read_keystore_payload(payload + padding) == read_keystore_payload(payload)
    for tail in (padding + b"\0" * 4, padding[:-1] + b"\1"):
        with pytest.raises(ImageFormatError, match="trailing"):
            read_keystore_payload(payload + tail)


def _keystore_image(keys: list[TrustedKey]) -> bytes:
    payload = build_keystore_payload(_ROOT.public_key(), SIGNER.certificate, keys)
    return build_package(payload, image_type=ImageType.TrustedKeystore,
                         component_id=uuid.UUID(int=7), image_id=uuid.UUID(int=8), signer=SIGNER)


KEYSTORE_IMAGE = _keystore_image([TrustedKey(b"\x01" * 20, POOL[0], frozenset({22, 23})),
                                  TrustedKey(b"\x02" * 20, POOL[2], frozenset({22}), True)])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(KEYSTORE_IMAGE) * 8 - 1).map(lambda bit: _flip(KEYSTORE_IMAGE, bit)))
@example(KEYSTORE_IMAGE)
def test_opening_a_damaged_keystore_image_fails_as_before(data: bytes) -> None:
    """Struct readers, memoized loads and the DER thumbprint change no outcome of
    open_keystore: same keystore, or the same error type and text. (Bit flips: a cut or an
    extension fails in `locate`, the same code on both sides.)"""
    assert_agree(lambda: open_keystore(data, FUSED)[1],
                 lambda: construct_open_keystore(data, FUSED))


def test_other_fuses_fail_as_before() -> None:
    other = root_key_hash(POOL[0])
    assert_agree(lambda: open_keystore(KEYSTORE_IMAGE, other),
                 lambda: construct_open_keystore(KEYSTORE_IMAGE, other))
    with pytest.raises(UntrustedSignerError, match="fused root-key hash"):
        open_keystore(KEYSTORE_IMAGE, other)


def test_sha1_of_the_der_is_the_certificate_thumbprint() -> None:
    """open_keystore names its signer by SHA-1 of the DER it carries; cryptography's
    fingerprint re-encodes the parsed certificate. They agree on every root in certifi."""
    pem = Path(certifi.where()).read_bytes()
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", pem,
                        re.DOTALL)
    assert len(blocks) > 100
    with real_world_roots():
        for block in blocks:
            der = base64.b64decode(block)
            certificate = x509.load_der_x509_certificate(der)
            assert hashlib.sha1(der).digest() == certificate.fingerprint(hashes.SHA1())


def test_a_key_list_is_read_whole_before_its_keys_are_loaded() -> None:
    """A key blob one byte short leaves one byte over: construct reports the trailing byte
    (it parses the layout whole), not the key that no longer loads; so does the reader."""
    payload = bytearray(build_keystore_payload(_ROOT.public_key(), SIGNER.certificate,
                                               [TrustedKey(b"\1" * 20, POOL[0], frozenset())]))
    length_at = len(payload) - 91 - 2  # the last key's u16 length, before its 91-byte SPKI
    assert int.from_bytes(payload[length_at:length_at + 2], "little") == 91
    payload[length_at] = 90
    assert_agree(lambda: read_keystore_payload(bytes(payload)),
                 lambda: construct_keystore_payload(bytes(payload)))
    with pytest.raises(ImageFormatError, match="1 unexpected trailing bytes"):
        read_keystore_payload(bytes(payload))
