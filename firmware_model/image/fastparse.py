"""Fast reading of what payloads carry: struct readers for the layouts declared with
construct (manifest, keystore), and memoized loads of the DER keys and certificates inside.

The construct declarations stay the specification and the builders. The readers decode the
same bytes with `struct.Struct`s compiled once, by `unpack_from` on the caller's buffer (no
copies), and are as strict as a construct parse: the same fields checked in the same order,
the same error text (`strict.field_error`, naming the field's construct path). An error's
offset is the start of the field that does not fit or does not hold its constant (construct
names where its stream stopped, which lies inside that field). The tests check reader and
declaration against each other on arbitrary bytes (tests/firmware_model/test_fast_decoders.py).

Loading a key or certificate is a pure function of its DER bytes, and a device meets the same
few at every update and boot: the loads are memoized by those bytes. Failures are not cached
(each call raises again), and nothing that checks a signature is.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_model.errors import ImageFormatError
from firmware_model.image.certstore import BAD_CERTIFICATE
from firmware_model.image.strict import field_error

Buffer = bytes | memoryview

_U16 = struct.Struct("<H")


@dataclass(frozen=True)
class Field:
    """One field: its construct path, its struct format ("H", "16s"; a pad "4x" is read for
    its length only and yields no value) and, for a construct `Const`, the value it must hold."""

    path: str
    fmt: str
    const: object = None


class Block:
    """Fields laid out back to back, read with one `unpack_from` when they all fit."""

    def __init__(self, *fields: Field) -> None:
        self.struct = struct.Struct("<" + "".join(f.fmt for f in fields))
        self.size = self.struct.size
        self._layout: list[tuple[int, int, Field]] = []  # (offset, size, field), in order
        self._consts: list[tuple[int, Field]] = []  # (value index, field) of the constants
        offset = index = 0
        for f in fields:
            size = struct.calcsize("<" + f.fmt)
            self._layout.append((offset, size, f))
            if f.const is not None:
                self._consts.append((index, f))
            offset += size
            index += not f.fmt.endswith("x")

    def unpack(self, buffer: Buffer, at: int, what: str) -> tuple[Any, ...]:
        """The values of the fields at `at`; ImageFormatError (offset of the first field that
        runs past the buffer or breaks its constant) as a construct parse would fail."""
        if at + self.size <= len(buffer):
            values = self.struct.unpack_from(buffer, at)
            for index, f in self._consts:
                if values[index] != f.const:
                    raise self._first_problem(buffer, at, what)
            return values
        raise self._first_problem(buffer, at, what)

    def _first_problem(self, buffer: Buffer, at: int, what: str) -> ImageFormatError:
        for offset, size, f in self._layout:
            start = at + offset
            if start + size > len(buffer):
                return field_error(what, f.path, start)
            if f.const is not None and struct.unpack_from("<" + f.fmt, buffer, start)[0] != f.const:
                return field_error(what, f.path, start)
        raise AssertionError("no problem found in a block that failed")


def blob(buffer: Buffer, at: int, what: str, path: str) -> tuple[int, int]:
    """The span (start, end) of the u16-length-prefixed bytes at `at` (construct's
    `Prefixed(Int16ul, GreedyBytes)`); ImageFormatError at `at` if prefix or bytes run past."""
    if at + 2 > len(buffer):
        raise field_error(what, path, at)
    end = at + 2 + _U16.unpack_from(buffer, at)[0]
    if end > len(buffer):
        raise field_error(what, path, at)
    return at + 2, end


@functools.lru_cache(maxsize=64)
def load_ec_key(der: bytes, what: str) -> ec.EllipticCurvePublicKey:
    """The EC public key a SubjectPublicKeyInfo DER holds; ImageFormatError naming `what`."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise ImageFormatError(f"{what} is not a DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ImageFormatError(f"{what} is not an EC key")
    return key


class LoadedCertificate(NamedTuple):
    """A certificate and what follows from its bytes alone."""

    certificate: x509.Certificate
    thumbprint: bytes  # SHA-1 of the DER: what an SG section names a certificate by
    tbs_certificate: bytes  # the bytes its issuer's signature covers


@functools.lru_cache(maxsize=16)
def load_certificate(der: bytes, what: str) -> LoadedCertificate:
    """An X.509 DER certificate loaded; ImageFormatError (`what` is not DER X.509)."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except BAD_CERTIFICATE:
        raise ImageFormatError(f"{what} is not DER X.509") from None
    return LoadedCertificate(certificate, hashlib.sha1(der).digest(),
                             certificate.tbs_certificate_bytes)
