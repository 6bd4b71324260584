"""One audit from inputs to rows: find endpoints, get their chains, judge them against both
stores at one time. I/O (files, sockets) happens here; the deciding is in `judge`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from firmware_model.image.keystore import Keyring
from tools.audit.chains import MissingChainError, fetch_chain, load_saved_chain, saved_endpoints
from tools.audit.endpoints import (
    Endpoint,
    Findings,
    Source,
    from_arguments,
    from_elf,
    from_manifest,
    wildcard_matches,
)
from tools.audit.errors import BadInputError, UnreachableError
from tools.audit.judge import Judge, judge_pair
from tools.audit.report import FAIL, UNKNOWN, Row, exit_code, judged_row, unjudged_row
from tools.audit.stores import Provenance, load_store

Reader = Callable[[bytes, str], Findings]


@dataclass(frozen=True)
class AuditRequest:
    """What to audit and against what. Live TLS unless `chains` names a folder of saved
    chains; `resolve` maps an endpoint to the address to connect to; store images must be
    signed by a key of `keyring` when it is given (`stores.store_keyring`)."""

    before: Path
    after: Path
    hosts: Sequence[str] = ()
    apps: Sequence[Path] = ()
    elves: Sequence[Path] = ()
    manifests: Sequence[Path] = ()
    at: dt.datetime | None = None
    chains: Path | None = None
    resolve: Mapping[Endpoint, str] = field(default_factory=dict)
    timeout: float = 5.0
    workers: int = 8
    keyring: Keyring | None = None


@dataclass(frozen=True)
class AuditResult:
    """The rows, the problems met (one line each), and the store images whose signature
    was not checked (no keyring given)."""

    rows: list[Row]
    problems: list[str]
    unauthenticated: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return exit_code(self.rows, self.problems)


def _read_with(reader: Reader, path: Path) -> Findings:
    try:
        return reader(path.read_bytes(), str(path))
    except OSError as error:
        raise BadInputError(str(path), f"cannot read ({error.strerror or error})") from None


def discover(request: AuditRequest) -> Findings:
    """Every endpoint the request names, with sources; unreadable inputs become problems."""
    from tools.audit.apps import from_app_image  # the app image reader needs cramfs

    findings = Findings()
    inputs: list[tuple[Reader, Path]] = [(from_app_image, path) for path in request.apps]
    inputs += [(from_manifest, path) for path in request.manifests]
    inputs += [(from_elf, path) for path in request.elves]
    for reader, path in inputs:
        try:
            findings.merge(_read_with(reader, path))
        except BadInputError as error:
            findings.problems.append(str(error))
    findings.merge(from_arguments(request.hosts))
    return findings


def covers(wildcard: Endpoint, endpoint: Endpoint) -> bool:
    """Whether a wildcard endpoint covers a concrete one (host pattern and port)."""
    return wildcard.port == endpoint.port and wildcard_matches(wildcard.host, endpoint.host)


def expand_wildcards(
    found: Mapping[Endpoint, list[Source]], saved: Sequence[Endpoint]
) -> dict[Endpoint, list[Source]]:
    """Wildcards replaced by the saved chains they cover (with the wildcard's sources); a
    wildcard that a found endpoint covers is dropped; one that nothing covers stays (it
    cannot be judged)."""
    targets: dict[Endpoint, list[Source]] = {}
    concrete = [e for e in found if not e.is_wildcard]
    for endpoint, sources in found.items():
        if not endpoint.is_wildcard:
            targets[endpoint] = list(sources)
            continue
        extra = [e for e in saved if covers(endpoint, e) and e not in found]
        for match in extra:
            targets.setdefault(match, list(sources))
        if not extra and not any(covers(endpoint, e) for e in concrete):
            targets[endpoint] = list(sources)
    return targets


class ChainSource:
    """Gets each endpoint's chain, saved or live."""

    def __init__(self, request: AuditRequest) -> None:
        self.request = request

    def get(self, endpoint: Endpoint) -> list[x509.Certificate]:
        if self.request.chains is not None:
            return load_saved_chain(self.request.chains, endpoint)
        address = self.request.resolve.get(endpoint)
        return fetch_chain(endpoint, address, self.request.timeout)

    def saved(self) -> list[Endpoint]:
        folder = self.request.chains
        if folder is None or not folder.is_dir():
            return []
        return [e for e in saved_endpoints(folder) if not e.is_wildcard]


@dataclass(frozen=True)
class Auditor:
    """Judges endpoints against two stores."""

    before: Judge
    after: Judge
    union: Judge

    def row(
        self,
        endpoint: Endpoint,
        sources: Sequence[Source],
        get: Callable[[Endpoint], list[x509.Certificate]],
    ) -> tuple[Row, str | None]:
        """The endpoint's row, and a one-line problem when its chain could not be had."""
        if endpoint.is_wildcard:
            return unjudged_row(endpoint, sources, UNKNOWN,
                                "unresolvable wildcard: no named host or saved chain matches it"
                                ), None
        try:
            chain = get(endpoint)
        except UnreachableError as error:
            return unjudged_row(endpoint, sources, FAIL, str(error).partition(": ")[2]), str(error)
        except MissingChainError as error:
            return unjudged_row(endpoint, sources, UNKNOWN, str(error).partition(": ")[2]), None
        except BadInputError as error:
            return unjudged_row(endpoint, sources, UNKNOWN, f"bad chain: {error.reason}"), str(
                error)
        before, after = judge_pair(chain, endpoint, self.before, self.after, self.union)
        return judged_row(endpoint, sources, before, after), None


def run_audit(request: AuditRequest) -> AuditResult:
    """Audit every endpoint of `request`. Raises BadInputError only when a store cannot be
    read or fails authentication (nothing can be judged then); every other bad input is a
    problem line."""
    before = load_store(request.before, request.keyring)
    after = load_store(request.after, request.keyring).sharing(before)
    unchecked = [store.label for store in (before, after)
                 if store.provenance is Provenance.UNAUTHENTICATED_IMAGE]
    at = request.at or dt.datetime.now(dt.UTC)
    auditor = Auditor(Judge(before, at), Judge(after, at), Judge(before.union(after), at))
    findings = discover(request)
    chains = ChainSource(request)
    wildcards = any(endpoint.is_wildcard for endpoint in findings.sources)
    saved = chains.saved() if wildcards else []
    targets = list(expand_wildcards(findings.sources, saved).items())

    def audit(target: tuple[Endpoint, list[Source]]) -> tuple[Row, str | None]:
        return auditor.row(target[0], target[1], chains.get)

    if request.chains is None and len(targets) > 1:
        with ThreadPoolExecutor(max_workers=request.workers) as pool:
            results = list(pool.map(audit, targets))
    else:
        results = [audit(target) for target in targets]
    problems = findings.problems + [problem for _, problem in results if problem]
    return AuditResult([row for row, _ in results], problems, unchecked)
