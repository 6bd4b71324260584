"""Judging a chain: cryptography's x509.verification (web PKI server profile, the host name,
the store, the time) decides; when it refuses, `diagnose` says why in the audit's words.

Verification builds paths, so a server that sends a cross-signed intermediate is judged by
its best path. Two stores are judged with one verification in the common case: a path found
against both stores' roots is valid for each store that holds its anchor.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.verification import (
    PolicyBuilder,
    ServerVerifier,
    Subject,
    VerificationError,
)

from tools.audit.endpoints import Endpoint
from tools.audit.stores import TrustStore, common_name

MAX_DEPTH = 8
MAX_PATHS = 16  # diagnosis looks at this many paths at most (cross-signing can multiply them)


@dataclass(frozen=True)
class Verdict:
    """The outcome for one chain against one store: ok or not, the root the path ends at
    (a failure keeps the root when the path reached the store but broke there), why not."""

    ok: bool
    anchor: str | None = None
    reason: str | None = None


def subject_of(endpoint: Endpoint) -> Subject:
    """The name a server certificate must carry for `endpoint`."""
    if endpoint.is_ip:
        return IPAddress(ipaddress.ip_address(endpoint.host))
    return DNSName(endpoint.host)


class Judge:
    """Judges chains against one store at one time."""

    def __init__(self, trust: TrustStore, at: dt.datetime) -> None:
        self.trust = trust
        self.at = at
        self._policy = PolicyBuilder().time(at)
        if trust.store is not None:
            self._policy = self._policy.store(trust.store)

    def verifier(self, endpoint: Endpoint) -> ServerVerifier | None:
        """A server verifier for `endpoint`; None when the store is empty."""
        if self.trust.store is None:
            return None
        return self._policy.build_server_verifier(subject_of(endpoint))

    def path(
        self, chain: Sequence[x509.Certificate], endpoint: Endpoint
    ) -> list[x509.Certificate] | None:
        """The valid path cryptography builds (leaf to root), or None when there is none."""
        verifier = self.verifier(endpoint)
        if verifier is None:
            return None
        try:
            return verifier.verify(chain[0], list(chain[1:]))
        except VerificationError:
            return None

    def ok(self, anchor: x509.Certificate) -> Verdict:
        """The verdict for a valid path ending at `anchor`."""
        return Verdict(True, self.trust.name_of(anchor) or common_name(anchor.subject))

    def judge(self, chain: Sequence[x509.Certificate], endpoint: Endpoint) -> Verdict:
        """The verdict for `chain` served as `endpoint`, with a reason when it fails.

        A chain none of whose certificates is a root of the store or names one as its
        issuer has no path to it: the diagnosis says so without a verification that fails
        (a refused verification costs as much as a good one)."""
        path = self.path(chain, endpoint) if self.reaches(chain) else None
        return self.ok(path[-1]) if path else diagnose(chain, endpoint, self)

    def reaches(self, chain: Sequence[x509.Certificate]) -> bool:
        """Whether some certificate of `chain` is a root of the store or was issued by one's
        subject (a path may exist)."""
        subjects = self.trust.subjects
        return any(c.issuer in subjects or c in self.trust for c in chain)


def judge_pair(
    chain: Sequence[x509.Certificate],
    endpoint: Endpoint,
    before: Judge,
    after: Judge,
    union: Judge,
) -> tuple[Verdict, Verdict]:
    """Verdicts before and after. `union` judges against both stores' roots at the same time:
    no path there means none in either; a path there holds for every store with its anchor,
    and only a store without it needs a verification of its own."""
    path = union.path(chain, endpoint)
    if path is None:
        return diagnose(chain, endpoint, before), diagnose(chain, endpoint, after)
    anchor = path[-1]

    def one(judge: Judge) -> Verdict:
        name = judge.trust.name_of(anchor)
        return Verdict(True, name) if name is not None else judge.judge(chain, endpoint)

    return one(before), one(after)


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def paths_to_store(
    chain: Sequence[x509.Certificate], trust: TrustStore
) -> Iterator[list[x509.Certificate]]:
    """Every issuer path from the leaf to a root of `trust`, ignoring time, names and policy."""
    candidates = list(chain[1:]) + list(trust.roots)

    def walk(path: list[x509.Certificate]) -> Iterator[list[x509.Certificate]]:
        top = path[-1]
        if top in trust:
            yield path
            return
        if len(path) >= MAX_DEPTH:
            return
        for issuer in candidates:
            if issuer not in path and _issued_by(top, issuer):
                yield from walk([*path, issuer])

    yield from walk([chain[0]])


def _time_problem(path: Sequence[x509.Certificate], at: dt.datetime) -> str | None:
    for certificate in path:
        name = common_name(certificate.subject)
        if at > certificate.not_valid_after_utc:
            return f"expired: {name} expired {certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z"
        if at < certificate.not_valid_before_utc:
            return f"expired: {name} not valid before {certificate.not_valid_before_utc:%Y-%m-%d}"
    return None


def _names(leaf: x509.Certificate) -> list[str]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):  # none, or extensions that do not parse
        return []
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]


def name_matches(leaf: x509.Certificate, endpoint: Endpoint) -> bool:
    """RFC 6125 matching of the host against the leaf's subjectAltName (IPs exactly,
    a wildcard covering one left-most label)."""
    for name in _names(leaf):
        pattern = name.lower()
        if pattern == endpoint.host:
            return True
        if pattern.startswith("*."):
            first, _, rest = endpoint.host.partition(".")
            if first and rest == pattern[2:]:
                return True
    return False


def _name_problem(leaf: x509.Certificate, endpoint: Endpoint) -> str | None:
    if name_matches(leaf, endpoint):
        return None
    names = _names(leaf)
    return f"name mismatch: certificate is for {', '.join(names) if names else 'no name'}"


def diagnose(chain: Sequence[x509.Certificate], endpoint: Endpoint, judge: Judge) -> Verdict:
    """Why `chain` fails for `endpoint` against `judge`'s store: self-signed, no path to the
    store, expired (any certificate on every path, the root included), name mismatch; a
    refusal none of these explains keeps cryptography's own words."""
    leaf, trust = chain[0], judge.trust
    if leaf.subject == leaf.issuer and _issued_by(leaf, leaf) and leaf not in trust:
        return Verdict(False, None, f"self-signed: {common_name(leaf.subject)}")
    paths = list(islice(paths_to_store(chain, trust), MAX_PATHS)) if judge.reaches(chain) else []
    if not paths:
        top = chain[-1]
        return Verdict(False, None, f"no path to {trust.called} (chain ends at "
                                    f"{common_name(top.issuer)})")
    anchor = trust.names[paths[0][-1]]
    problems = [_time_problem(path, judge.at) for path in paths]
    reasons = [problems[0]] if all(problems) else []
    reasons.append(_name_problem(leaf, endpoint))
    found = [reason for reason in reasons if reason]
    if found:
        return Verdict(False, anchor, "; ".join(found))
    return Verdict(False, anchor, f"rejected: {_refusal(chain, endpoint, judge)}")


def _refusal(chain: Sequence[x509.Certificate], endpoint: Endpoint, judge: Judge) -> str:
    verifier = judge.verifier(endpoint)
    try:
        if verifier is not None:
            verifier.verify(chain[0], list(chain[1:]))
    except VerificationError as error:
        return " ".join(str(error).split())
    return "verification failed"
