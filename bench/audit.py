"""Benchmark: the endpoint audit per endpoint, against a bare `ServerVerifier.verify` call.

Setup: a lab root and intermediate issue 1,000 server leaves (ECDSA P-256), saved as
`HOST_443.pem` chains (leaf + intermediate). The store before is certifi's bundle plus the
lab root (150 roots); the store after drops one public root (149), as a store update does.

Baseline: `ServerVerifier.verify(leaf, [intermediate])` with a verifier built beforehand for
each host against the 150-root store, certificates parsed beforehand (fresh objects each
round: cryptography caches in a certificate what a first verification parses).

Measured, per endpoint: each endpoint's fastest of 7 rounds, the three below taking turns
endpoint by endpoint with the baseline (so load from elsewhere hits them alike), averaged:
- judging: `judge_pair` against both stores (one verification when the anchor is in both),
  on a chain parsed beforehand like the baseline's;
- the audit per endpoint (the target, <= 1.3x): what the audit does for one endpoint,
  from reading and parsing its saved chain file to its row;
and the whole run: `run_audit` over the 1,000 endpoints (fastest of 7), loading both stores
and parsing the 1,000 arguments included, per endpoint.

Run: .venv/bin/python -m bench.audit
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder

from tools.audit.endpoints import Endpoint, Source
from tools.audit.judge import Judge, judge_pair, subject_of
from tools.audit.runner import Auditor, AuditRequest, ChainSource, run_audit
from tools.audit.stores import load_store
from tools.pki import issue, new_key

ENDPOINTS = 1000
ROUNDS = 7
NOW = dt.datetime.now(dt.UTC)
PEM = serialization.Encoding.PEM
Key = ec.EllipticCurvePrivateKey


def _cert(name: str, key: Key, issuer: tuple[x509.Certificate, Key] | None,
          host: str | None = None) -> x509.Certificate:
    """A CA certificate, or a server leaf for `host` when it is given (tools.pki.issue)."""
    return issue(name, key, issuer, ca=host is None, not_before=NOW - dt.timedelta(days=30),
                 not_after=NOW + dt.timedelta(days=365),
                 names=None if host is None else [x509.DNSName(host)],
                 extended_usages=() if host is None else [ExtendedKeyUsageOID.SERVER_AUTH])


def lab(folder: Path) -> tuple[list[tuple[str, list[x509.Certificate]]], Path, Path]:
    """The saved chains (in `folder/chains`) and the two store files."""
    root_key, ca_key = new_key(), new_key()
    root = _cert("Bench Lab Root", root_key, None)
    ca = _cert("Bench Lab CA", ca_key, (root, root_key))
    chains_dir = folder / "chains"
    chains_dir.mkdir()
    chains = []
    for i in range(ENDPOINTS):
        host = f"host{i:04d}.bench.test"
        leaf = _cert(host, new_key(), (ca, ca_key), host)
        chains.append((host, [leaf, ca]))
        (chains_dir / f"{host}_443.pem").write_bytes(leaf.public_bytes(PEM) + ca.public_bytes(PEM))
    public = Path(certifi.where()).read_bytes()
    (folder / "before.pem").write_bytes(public + root.public_bytes(PEM))
    first_end = public.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----")
    (folder / "after.pem").write_bytes(public[first_end:] + root.public_bytes(PEM))
    return chains, folder / "before.pem", folder / "after.pem"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def fresh(pems: list[bytes]) -> list[list[x509.Certificate]]:
    """The chains parsed anew: cryptography caches what a verification parses in the
    certificate objects, so every timed pass must start from objects never verified."""
    return [x509.load_pem_x509_certificates(data) for data in pems]


def measure(chains_dir: Path, before_path: Path, after_path: Path,
            hosts: list[str]) -> dict[str, float]:
    """Best seconds per endpoint of: the bare verify, the audit's judging, the audit's work
    for one endpoint (saved chain file to row), the whole run (amortized)."""
    before = load_store(before_path)
    after = load_store(after_path).sharing(before)
    assert before.store is not None and len(before.roots) == 150, len(before.roots)
    builder = PolicyBuilder().store(before.store).time(NOW)
    endpoints = [Endpoint(host) for host in hosts]
    verifiers = [builder.build_server_verifier(subject_of(e)) for e in endpoints]
    auditor = Auditor(Judge(before, NOW), Judge(after, NOW), Judge(before.union(after), NOW))
    pems = [(chains_dir / f"{host}_443.pem").read_bytes() for host in hosts]
    request = AuditRequest(before=before_path, after=after_path, at=NOW, hosts=hosts,
                           chains=chains_dir)
    source = ChainSource(request)
    result = run_audit(request)
    assert len(result.rows) == ENDPOINTS
    assert all(row.before == row.after == "ok" for row in result.rows), result.rows[:1]

    per_op = {name: [float("inf")] * ENDPOINTS for name in ("bare", "judging", "endpoint")}
    whole = float("inf")
    for _ in range(ROUNDS):
        base_chains, judge_chains = fresh(pems), fresh(pems)
        for i, endpoint in enumerate(endpoints):  # the three take turns, endpoint by endpoint
            base, chain = base_chains[i], judge_chains[i]
            t0 = time.perf_counter()
            verifiers[i].verify(base[0], base[1:])
            t1 = time.perf_counter()
            judge_pair(chain, endpoint, auditor.before, auditor.after, auditor.union)
            t2 = time.perf_counter()
            auditor.row(endpoint, (Source.ARGUMENT,), source.get)
            t3 = time.perf_counter()
            for name, seconds in (("bare", t1 - t0), ("judging", t2 - t1), ("endpoint", t3 - t2)):
                per_op[name][i] = min(per_op[name][i], seconds)
        whole = min(whole, timed(partial(run_audit, request)))
    best = {name: sum(times) / ENDPOINTS for name, times in per_op.items()}
    return {**best, "whole": whole / ENDPOINTS}


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        chains, before_path, after_path = lab(Path(scratch))
        per = measure(Path(scratch) / "chains", before_path, after_path,
                      [host for host, _ in chains])
    base = per["bare"]
    print(f"audit of {ENDPOINTS} saved chains, 150-root store before, 149 after; "
          f"per endpoint, fastest of {ROUNDS} rounds")
    print(f"bare ServerVerifier.verify (baseline)        {base * 1e6:7.1f} us")
    for name, label in [("judging", "judging both stores"),
                        ("endpoint", "chain file -> row (the audit per endpoint)"),
                        ("whole", "whole run, stores and arguments amortized")]:
        print(f"{label:44s} {per[name] * 1e6:7.1f} us  ratio {per[name] / base:.2f}x")
    print(f"ratio per endpoint: {per['endpoint'] / base:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
