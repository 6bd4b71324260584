"""Roots an app brings itself, and how an endpoint fares with them.

Many Azure Sphere apps verify some servers against roots of their own: curl's
`CURLOPT_CAINFO` or wolfSSL's `wolfSSL_CTX_load_verify_locations` pointed at a PEM in the
image package (`Storage_GetAbsolutePathInImagePackage`), or a certificate compiled into the
executable. Those endpoints do not depend on the OS trusted root store. The roots are found
in every file of an Applications image (PEM blocks anywhere; DER certificates, a whole file or
embedded in one), or in the files the user names (`--app-roots`) when there is no image.
Certificates that can anchor a chain count: CA certificates and self-signed ones.

Azure IoT Hub (`*.azure-devices.net`) and DPS (`global.azure-devices-provisioning.net`) are
reached through the Azure IoT C SDK, which on Azure Sphere verifies against the OS store: a
bundled root does not save them. What this assumes where Microsoft's documentation is silent:
docs/device.md, "Roots an app brings itself".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from firmware_model.image.certstore import real_world_roots
from policy.files import read_regular
from tools.audit.endpoints import Endpoint
from tools.audit.errors import BadInputError
from tools.audit.judge import Judge
from tools.audit.stores import TrustStore, common_name

OK, FAIL, NONE = "ok", "fail", "none"
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]*-----END CERTIFICATE-----")
# a certificate and its tbsCertificate, SEQUENCEs with two-byte lengths, then the version
# ([0] INTEGER) or, in a v1 certificate, the serial number (INTEGER)
_DER_START = re.compile(rb"\x30\x82(..)\x30\x82(..)(?:\xa0\x03\x02\x01[\x00-\x02])?\x02",
                        re.DOTALL)
OS_STORE_SUFFIX = ".azure-devices.net"
OS_STORE_HOSTS = frozenset({"global.azure-devices-provisioning.net"})
OS_STORE_NOTE = ("Azure IoT Hub/DPS: the Azure IoT C SDK on Azure Sphere verifies it against "
                 "the OS store; bundled roots do not apply")
AT_RISK_NOTE = "at risk: breaks if the app reaches it through the OS store"


def os_store_only(endpoint: Endpoint) -> bool:
    """Whether `endpoint` is an Azure IoT Hub or DPS endpoint (a `*.` wildcard included)."""
    host = endpoint.host
    return host in OS_STORE_HOSTS or (host.endswith(OS_STORE_SUFFIX) and
                                      host != OS_STORE_SUFFIX[1:])


@dataclass(frozen=True)
class Bundle:
    """The roots one input of the audit brings: `label` names it (an image, `--app-roots`);
    an empty bundle means the input brings no root (the app uses the OS store)."""

    label: str
    trust: TrustStore

    @property
    def empty(self) -> bool:
        return not self.trust.roots


def _pem_certificates(data: bytes, what: str) -> tuple[list[x509.Certificate], list[str]]:
    found, problems = [], []
    for match in _PEM_BLOCK.finditer(data):
        try:
            found.append(x509.load_pem_x509_certificate(match.group()))
        except ValueError as error:
            problems.append(f"{what}: a PEM certificate at byte {match.start()} does not parse "
                            f"({error})")
    return found, problems


def _der_certificates(data: bytes) -> Iterator[x509.Certificate]:
    at = 0
    while (match := _DER_START.search(data, at)) is not None:
        start = match.start()
        end = start + 4 + int.from_bytes(match.group(1), "big")
        tbs_end = start + 8 + int.from_bytes(match.group(2), "big")
        # the signature algorithm (a SEQUENCE) follows the tbsCertificate, inside the whole
        if tbs_end < end <= len(data) and data[tbs_end] == 0x30:
            try:
                certificate = x509.load_der_x509_certificate(data[start:end])
            except ValueError:
                pass
            else:
                yield certificate
                at = end
                continue
        at = start + 1


def certificates_in(data: bytes, what: str) -> tuple[list[x509.Certificate], list[str]]:
    """Every certificate in a file: PEM blocks anywhere (a text file, a string compiled into
    an executable), DER certificates whole or embedded (a byte array); and a problem line
    for a PEM block that does not parse (a DER candidate that does not parse is none)."""
    found, problems = _pem_certificates(data, what)
    found += _der_certificates(data)
    return found, problems



def can_anchor(certificate: x509.Certificate) -> bool:
    """A CA certificate (basicConstraints cA) or a self-signed one (an old v1 root)."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return certificate.subject == certificate.issuer
    except ValueError:  # extensions that do not parse
        return False
    return constraints.value.ca


def bundle_of(files: Mapping[str, bytes], label: str, called: str = "the bundled roots"
              ) -> tuple[Bundle, list[str]]:
    """The roots in `files` (path -> bytes), each named `CN (path)` after the first file it
    is in; and the problems met."""
    roots: dict[x509.Certificate, str] = {}
    problems: list[str] = []
    with real_world_roots():
        for path, data in files.items():
            found, trouble = certificates_in(data, f"{label}:{path}")
            problems += trouble
            for certificate in found:
                if can_anchor(certificate) and certificate not in roots:
                    roots[certificate] = f"{common_name(certificate.subject)} ({path})"
    trust = TrustStore(label, tuple(roots), labels=tuple(roots.values()), called=called)
    return Bundle(label, trust), problems


def _files_under(path: Path) -> Iterator[Path]:
    """The file itself, or every regular file under a folder; BadInputError for anything
    else (a device, a pipe: nothing to read to its end)."""
    if path.is_dir():
        yield from sorted(p for p in path.rglob("*") if p.is_file())
    elif path.is_file() or not path.exists():
        yield path  # a missing one fails to read, saying so
    else:
        raise BadInputError(os.fspath(path), "not a file or a folder")


def bundle_from_paths(paths: Sequence[Path]) -> Bundle:
    """The roots in the files (or every file under the folders) the user names.

    Raises BadInputError for a path that cannot be read, a PEM certificate that does not
    parse, or a path in which no certificate that can anchor a chain is found: the user
    said the app brings roots there."""
    files: dict[str, bytes] = {}
    for path in paths:
        anchors = 0
        for file in _files_under(path):
            where = os.fspath(file)
            files[where] = _read(file)
            with real_world_roots():
                found, problems = certificates_in(files[where], where)
                anchors += sum(map(can_anchor, found))
            if problems:
                raise BadInputError(where, problems[0].removeprefix(f"{where}: "))
        if not anchors:
            raise BadInputError(os.fspath(path),
                                "no CA or self-signed certificate (PEM or DER) in it")
    return bundle_of(files, "--app-roots")[0]


def _read(file: Path) -> bytes:
    try:
        return read_regular(file)
    except OSError as error:
        raise BadInputError(os.fspath(file), f"cannot read ({error.strerror or error})") from None


@dataclass(frozen=True)
class AppVerdict:
    """How an endpoint fares with the roots its apps bring: `value` is ok (every app naming
    it verifies the chain with its own roots at the audit time), fail, none (an app naming it
    brings no root), or the row's verdict when there is no chain; `anchor` the bundled root
    of a verified path; `note` says where the apps naming it disagree."""

    value: str = NONE
    anchor: str | None = None
    reason: str | None = None
    note: str | None = None


_RANK = {NONE: 0, FAIL: 1, OK: 2}


def judge_bundles(chain: Sequence[x509.Certificate], endpoint: Endpoint,
                  judges: Sequence[tuple[Bundle, Judge | None]]) -> AppVerdict:
    """The chain judged against each bundle (a Judge for each that is not empty); the
    weakest outcome stands (none < fail < ok)."""
    outcomes: list[tuple[Bundle, AppVerdict]] = []
    for bundle, judge in judges:
        if judge is None:
            outcomes.append((bundle, AppVerdict()))
            continue
        verdict = judge.judge(chain, endpoint)
        outcomes.append((bundle, AppVerdict(OK if verdict.ok else FAIL, verdict.anchor,
                                            verdict.reason)))
    if not outcomes:
        return AppVerdict()
    weakest = min(outcomes, key=lambda outcome: _RANK[outcome[1].value])[1]
    values = {verdict.value for _, verdict in outcomes}
    if len(values) == 1:
        return weakest
    detail = "; ".join(f"{bundle.label}: {verdict.value}" for bundle, verdict in outcomes)
    return AppVerdict(weakest.value, weakest.anchor, weakest.reason,
                      f"bundles differ ({detail})")
