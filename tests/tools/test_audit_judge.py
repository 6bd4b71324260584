"""Judging chains with x509.verification: best path, time, names, and the reasons given."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.tools.audit_lab import NOW, Issued, LabWeb, issue
from tools import pki
from tools.audit.endpoints import Endpoint
from tools.audit.judge import Judge, Verdict, judge_pair
from tools.audit.stores import TrustStore, from_roots
from tools.pki import new_key


@pytest.fixture(scope="module")
def web() -> LabWeb:
    return LabWeb.create()


def store(*roots: Issued) -> TrustStore:
    return from_roots("lab", [root.cert for root in roots])


def verdict(web: LabWeb, host: str, trust: TrustStore, at: dt.datetime = NOW) -> Verdict:
    return Judge(trust, at).judge([i.cert for i in web.chains[host]], Endpoint(host))


def test_cross_signed_intermediate_is_judged_by_its_best_path(web: LabWeb) -> None:
    assert web.chains["cross.lab.test"][-1].cert.issuer == web.old.cert.subject  # as sent
    assert verdict(web, "cross.lab.test", store(web.old)) == Verdict(True, "Lab Old Root")
    assert verdict(web, "cross.lab.test", store(web.kept)) == Verdict(True, "Lab Kept Root")
    assert verdict(web, "removed.lab.test", store(web.kept)).ok is False


def test_root_expiring_before_the_audit_time(web: LabWeb) -> None:
    trust = store(web.expiring)
    assert verdict(web, "expiring.lab.test", trust) == Verdict(True, "Lab Expiring Root")
    later = verdict(web, "expiring.lab.test", trust, NOW + dt.timedelta(days=60))
    assert later.ok is False and later.anchor == "Lab Expiring Root"
    assert later.reason is not None and later.reason.startswith("expired: Lab Expiring Root")


@pytest.mark.parametrize(
    ("host", "reason"),
    [("removed.lab.test", "no path to the store (chain ends at Lab Old Root)"),
     ("mismatch.lab.test", "name mismatch: certificate is for other.lab.test"),
     ("self.lab.test", "self-signed: self.lab.test")],
)
def test_failure_reasons(web: LabWeb, host: str, reason: str) -> None:
    assert verdict(web, host, store(web.kept, web.expiring)).reason == reason


def test_an_empty_store_trusts_nothing(web: LabWeb) -> None:
    judged = verdict(web, "kept.lab.test", store())
    assert judged.ok is False and judged.reason is not None
    assert judged.reason.startswith("no path to the store")


def test_ip_address_endpoints_match_ip_names(web: LabWeb) -> None:
    judge = Judge(store(web.kept), NOW)
    by_ip = issue("by address", web.kept, names=["127.0.0.1"])
    by_name = issue("by name", web.kept, names=["ip.lab.test"])
    assert judge.judge([by_ip.cert], Endpoint("127.0.0.1")) == Verdict(True, "Lab Kept Root")
    assert judge.judge([by_name.cert], Endpoint("127.0.0.1")).reason == (
        "name mismatch: certificate is for ip.lab.test")


def test_pair_judging_equals_judging_each_store_alone(web: LabWeb) -> None:
    """The one-verification shortcut for two stores changes no verdict."""
    roots = [web.old, web.kept, web.expiring]
    subsets = [store(*c) for n in range(4) for c in itertools.combinations(roots, n)]
    for at in (NOW, NOW + dt.timedelta(days=60)):
        for before, after in itertools.product(subsets, repeat=2):
            judges = Judge(before, at), Judge(after, at), Judge(before.union(after), at)
            for host, chain in web.chains.items():
                certs, endpoint = [i.cert for i in chain], Endpoint(host)
                assert judge_pair(certs, endpoint, *judges) == (
                    judges[0].judge(certs, endpoint), judges[1].judge(certs, endpoint))


def test_lab_certificates_carry_what_the_server_profile_checks(web: LabWeb) -> None:
    """The lab's certificates come from tools.pki.issue: its validity override, server-auth
    extended key usage on leaves, path length on CAs, key identifiers on every certificate."""
    leaf, ca = web.chains["kept.lab.test"]
    assert web.expiring.cert.not_valid_after_utc == NOW + dt.timedelta(days=30)
    usage = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        ca.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = leaf.cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    bounded_key = new_key()
    bounded = Issued(pki.issue("Bounded CA", bounded_key, (web.kept.cert, web.kept.key),
                               ca=True, path_length=0, not_before=NOW - dt.timedelta(days=1)),
                     bounded_key)
    assert bounded.cert.extensions.get_extension_for_class(
        x509.BasicConstraints).value.path_length == 0
    judge, host = Judge(store(web.kept), NOW), Endpoint("deep.lab.test")
    direct = issue("deep.lab.test", bounded, names=["deep.lab.test"])
    assert judge.judge([direct.cert, bounded.cert], host) == Verdict(True, "Lab Kept Root")
    # a CA under a path_length=0 CA breaks the path: the bound is really in the certificate
    below = issue("Below Bounded", bounded, ca=True)
    deep = issue("deep.lab.test", below, names=["deep.lab.test"])
    assert judge.judge([deep.cert, below.cert, bounded.cert], host).ok is False
