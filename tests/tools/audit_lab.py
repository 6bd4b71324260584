"""Lab web PKIs and real TLS servers on 127.0.0.1 for the endpoint audit tests.

Nobody can sign with the real roots, so lab roots stand in for them: `old` plays Baltimore
(removed by the update), `kept` plays DigiCert Global Root G2, `expiring` a root that runs
out between now and the audit time.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import struct
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from firmware_model.image.build import build_package
from firmware_model.image.certstore import build_store_payload
from firmware_model.image.cramfs import build_cramfs
from firmware_model.image.keystore import TrustedKey, build_keystore_payload
from firmware_model.image.sections import ImageType
from firmware_model.image.signing import Signer
from tools import pki
from tools.pki import IMAGE_SIGNING, KEYSTORE_SIGNING, ROOT, LabPki, load_certificate, new_key

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
YEAR = dt.timedelta(days=365)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def name(self) -> str:
        return str(self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def issue(
    common_name: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    names: Sequence[str] = (),
    key: ec.EllipticCurvePrivateKey | None = None,
    not_before: dt.datetime = NOW - YEAR,
    not_after: dt.datetime = NOW + 5 * YEAR,
) -> Issued:
    """A web PKI certificate (self-signed when `issuer` is None): a CA, or a server leaf for
    `names` (host names or IP addresses) usable for TLS server authentication."""
    key = key or new_key()
    certificate = pki.issue(
        common_name, key, None if issuer is None else (issuer.cert, issuer.key), ca=ca,
        not_before=not_before, not_after=not_after,
        names=None if ca else [pki.general_name(name) for name in names],
        extended_usages=() if ca else [ExtendedKeyUsageOID.SERVER_AUTH],
    )
    return Issued(certificate, key)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclass
class LabWeb:
    """Three lab roots, their CAs, and the chains the lab servers send, by host name."""

    old: Issued
    kept: Issued
    expiring: Issued
    chains: dict[str, list[Issued]] = field(default_factory=dict)

    @classmethod
    def create(cls) -> LabWeb:
        old = issue("Lab Old Root", ca=True)
        kept = issue("Lab Kept Root", ca=True)
        expiring = issue("Lab Expiring Root", ca=True, not_after=NOW + dt.timedelta(days=30))
        web = cls(old, kept, expiring)
        old_ca = issue("Lab Old CA", old, ca=True)
        kept_ca = issue("Lab Kept CA", kept, ca=True)
        expiring_ca = issue("Lab Expiring CA", expiring, ca=True)
        # the kept root's key and name, vouched for by the old root: a cross-signed intermediate
        cross = issue("Lab Kept Root", old, ca=True, key=kept.key)
        web.serve("removed.lab.test", old_ca)
        web.serve("kept.lab.test", kept_ca)
        web.serve("cross.lab.test", kept_ca, cross)
        web.serve("expiring.lab.test", expiring_ca)
        web.serve("mismatch.lab.test", kept_ca, names=["other.lab.test"])
        web.chains["self.lab.test"] = [issue("self.lab.test", names=["self.lab.test"])]
        return web

    def serve(self, host: str, *cas: Issued, names: Sequence[str] = ()) -> None:
        """Record the chain `host` sends: a leaf issued by the first CA, then the CAs."""
        leaf = issue(host, cas[0], names=names or [host])
        self.chains[host] = [leaf, *cas]

    def chain_pem(self, host: str) -> bytes:
        return pem(*(issued.cert for issued in self.chains[host]))

    def save_chains(self, folder: Path, port: int = 443) -> Path:
        """Every lab chain as `folder/HOST_PORT.pem`."""
        folder.mkdir(parents=True, exist_ok=True)
        for host in self.chains:
            (folder / f"{host}_{port}.pem").write_bytes(self.chain_pem(host))
        return folder


class LabTlsServer:
    """A real TLS server on 127.0.0.1 that picks the chain by SNI (virtual hosting) and
    completes the handshake, in a thread."""

    def __init__(self, web: LabWeb, folder: Path) -> None:
        self.contexts: dict[str, ssl.SSLContext] = {}
        folder.mkdir(parents=True, exist_ok=True)
        for host, chain in web.chains.items():
            certfile, keyfile = folder / f"{host}.pem", folder / f"{host}.key"
            certfile.write_bytes(pem(*(issued.cert for issued in chain)))
            keyfile.write_bytes(chain[0].key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            self.contexts[host] = context
        self.default = next(iter(self.contexts.values()))
        self.default.sni_callback = self._pick
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _pick(self, tls: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        if name in self.contexts:
            tls.context = self.contexts[name]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with suppress(OSError), self.default.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    def __enter__(self) -> LabTlsServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.listener.close()


@contextmanager
def dropping_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts and closes at once: the handshake drops."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def store_image(roots: Sequence[Issued], signer: Signer) -> bytes:
    """An UpdateCertStore image package holding `roots` (as the update service ships it)."""
    payload = build_store_payload([(root.name.replace(" ", "_"), root.cert) for root in roots])
    return build_package(payload, image_type=ImageType.UpdateCertStore,
                         component_id=uuid.uuid4(), image_id=uuid.uuid4(), signer=signer,
                         name="lab-certstore")


def keystore_image(pki: LabPki, image_types: Sequence[ImageType] = (ImageType.UpdateCertStore,)
                   ) -> bytes:
    """A TrustedKeystore image of `pki` (signed with its keystore-signing key, naming its
    root) that lets the image-signing key sign `image_types`."""
    signer = pki.signer(KEYSTORE_SIGNING)
    image_signing = load_certificate(pki.folder / f"{IMAGE_SIGNING}.pem")
    root_key = load_certificate(pki.folder / f"{ROOT}.pem").public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey)
    payload = build_keystore_payload(root_key, signer.certificate,
                                     [TrustedKey.from_certificate(image_signing, image_types)])
    return build_package(payload, image_type=ImageType.TrustedKeystore,
                         component_id=uuid.uuid4(), image_id=uuid.uuid4(), signer=signer,
                         name="lab-keystore")


def app_image(files: dict[str, bytes], signer: Signer) -> bytes:
    """An Applications image package whose payload is a cramfs holding `files`."""
    return build_package(build_cramfs(files), image_type=ImageType.Applications,
                         component_id=uuid.uuid4(), image_id=uuid.uuid4(), signer=signer,
                         name="audit-app")


def elf32_arm(sections: Sequence[tuple[str, int, int, bytes]]) -> bytes:
    """A small valid ELF32 little-endian EM_ARM executable with the given sections
    (name, sh_type, sh_flags, data) and a .shstrtab; no cross compiler needed."""
    names = b"\0" + b"".join(name.encode() + b"\0" for name, *_ in sections) + b".shstrtab\0"
    body, offsets, offset = b"", [], 52
    for _, _, _, data in sections:
        offsets.append(offset + len(body))
        body += data + b"\0" * (-len(data) % 4)
    shstrtab_offset = offset + len(body)
    body += names + b"\0" * (-len(names) % 4)
    shoff = offset + len(body)
    headers = [struct.pack("<10I", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    name_at = 1
    for (name, sh_type, flags, data), at in zip(sections, offsets, strict=True):
        address = 0x10000 + at if flags & 2 else 0  # SHF_ALLOC
        headers.append(struct.pack("<10I", name_at, sh_type, flags, address, at, len(data),
                                   0, 0, 4, 0))
        name_at += len(name) + 1
    headers.append(struct.pack("<10I", name_at, 3, 0, 0, shstrtab_offset, len(names),
                               0, 0, 1, 0))
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIIIIIHHHHHH", 2, 40, 1, 0x10000 + offsets[0], 0, shoff,
                                 0x05000400, 52, 32, 0, 40, len(headers), len(headers) - 1)
    return header + body + b"".join(headers)
