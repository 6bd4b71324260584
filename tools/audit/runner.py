"""One audit from inputs to rows: find endpoints and the roots their apps bundle, get their
chains, judge them against both stores and the bundled roots at one time. I/O (files,
sockets) happens here; the deciding is in `judge`, `bundle` and `report`.

Which bundled roots an endpoint is judged against: those of every `--app` image that names
it (its own files), and `--app-roots`, when given, for an endpoint named by `--elf`,
`--manifest` or the command line. An endpoint named by several of these fares as the weakest
of them; one none of them names has no bundle (`none`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from firmware_model.image.keystore import Keyring
from policy.files import read_regular
from tools.audit.bundle import (
    AppVerdict,
    Bundle,
    bundle_from_paths,
    judge_bundles,
    os_store_only,
)
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
from tools.audit.errors import BadInputError, UnreachableError, UnreadableInputError
from tools.audit.judge import Judge, judge_pair
from tools.audit.report import (
    FAIL,
    NO_BUNDLE,
    UNKNOWN,
    Row,
    exit_code,
    judged_row,
    unjudged_row,
)
from tools.audit.stores import Provenance, load_store

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
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
    app_roots: Sequence[Path] = ()


@dataclass(frozen=True)
class AuditResult:
    """The rows, the problems met (one line each), the store images whose signature was
    not checked (no keyring given), and the time the chains were judged at."""

    rows: list[Row]
    problems: list[str]
    unauthenticated: list[str] = field(default_factory=list)
    at: dt.datetime = EPOCH

    @property
    def exit_code(self) -> int:
        return exit_code(self.rows, self.problems)


def _read_with(reader: Reader, path: Path) -> Findings:
    try:
        return reader(read_regular(path), str(path))
    except OSError as error:
        raise UnreadableInputError(str(path), f"cannot read ({error.strerror or error})") from None


@dataclass
class Discovery:
    """Every endpoint found (with sources and problems) and the bundles of the inputs that
    name it."""

    findings: Findings = field(default_factory=Findings)
    bundles: dict[Endpoint, list[Bundle]] = field(default_factory=dict)

    def add(self, findings: Findings, bundle: Bundle | None) -> None:
        """The findings of one input, and its bundle (None: it says nothing of roots)."""
        self.findings.merge(findings)
        if bundle is None:
            return
        for endpoint in findings.sources:
            known = self.bundles.setdefault(endpoint, [])
            if not any(b is bundle for b in known):
                known.append(bundle)

    def bundles_of(self, endpoint: Endpoint) -> list[Bundle]:
        """The bundles of the inputs naming `endpoint`; for one that only a wildcard
        named, those of the wildcards covering it."""
        if endpoint in self.bundles:
            return self.bundles[endpoint]
        found: list[Bundle] = []
        for wildcard, bundles in self.bundles.items():
            if covers(wildcard, endpoint):
                found += [b for b in bundles if not any(b is f for f in found)]
        return found


def discover(request: AuditRequest, loose: Bundle | None = None) -> Discovery:
    """Every endpoint the request names, with sources and bundles: an app image's own,
    `loose` (the --app-roots) for the rest; without --app-roots the rest say nothing of
    roots (an endpoint an app image names too fares as that app). Inputs whose content is
    unusable become problems; a file that cannot be read at all ends it
    (UnreadableInputError)."""
    from tools.audit.apps import read_app_image  # the app image reader needs cramfs

    found = Discovery()
    for path in request.apps:
        try:
            found.add(*_read_app(read_app_image, path))
        except UnreadableInputError:
            raise
        except BadInputError as error:
            found.findings.problems.append(str(error))
    inputs: list[tuple[Reader, Path]] = [(from_manifest, path) for path in request.manifests]
    inputs += [(from_elf, path) for path in request.elves]
    for reader, path in inputs:
        try:
            found.add(_read_with(reader, path), loose)
        except UnreadableInputError:
            raise
        except BadInputError as error:
            found.findings.problems.append(str(error))
    found.add(from_arguments(request.hosts), loose)
    return found


def _read_app(reader: Callable[[bytes, str], tuple[Findings, Bundle]], path: Path
              ) -> tuple[Findings, Bundle]:
    try:
        return reader(read_regular(path), str(path))
    except OSError as error:
        raise UnreadableInputError(str(path), f"cannot read ({error.strerror or error})") from None


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
    """Judges endpoints against two stores and the roots their apps bundle (a Judge for
    each bundle in `bundle_judges`, by identity; made on the spot for another)."""

    before: Judge
    after: Judge
    union: Judge
    bundle_judges: Mapping[int, Judge] = field(default_factory=dict)

    def _app(self, chain: list[x509.Certificate], endpoint: Endpoint,
             bundles: Sequence[Bundle]) -> AppVerdict:
        judges = [(b, None if b.empty else self.bundle_judges.get(id(b)) or
                   Judge(b.trust, self.before.at)) for b in bundles]
        return judge_bundles(chain, endpoint, judges)

    def row(
        self,
        endpoint: Endpoint,
        sources: Sequence[Source],
        get: Callable[[Endpoint], list[x509.Certificate]],
        bundles: Sequence[Bundle] = (),
    ) -> tuple[Row, str | None]:
        """The endpoint's row, and a one-line problem when its chain could not be had."""
        os_only = os_store_only(endpoint)

        def without_chain(verdict: str, reason: str) -> Row:
            bundled = any(not b.empty for b in bundles)
            return unjudged_row(endpoint, sources, verdict, reason, bundled, os_only)

        if endpoint.is_wildcard:
            return without_chain(UNKNOWN, "unresolvable wildcard: no named host or saved "
                                          "chain matches it"), None
        try:
            chain = get(endpoint)
        except UnreachableError as error:
            return without_chain(FAIL, str(error).partition(": ")[2]), str(error)
        except MissingChainError as error:
            return without_chain(UNKNOWN, str(error).partition(": ")[2]), None
        except BadInputError as error:
            return without_chain(UNKNOWN, f"bad chain: {error.reason}"), str(error)
        before, after = judge_pair(chain, endpoint, self.before, self.after, self.union)
        app = self._app(chain, endpoint, bundles) if bundles else NO_BUNDLE
        return judged_row(endpoint, sources, before, after, app, os_only), None


def run_audit(request: AuditRequest) -> AuditResult:
    """Audit every endpoint of `request`. Raises BadInputError only when a store or a file
    of --app-roots cannot be read or fails authentication (nothing can be judged then);
    every other bad input is a problem line."""
    before = load_store(request.before, request.keyring)
    after = load_store(request.after, request.keyring).sharing(before)
    unchecked = [store.label for store in (before, after)
                 if store.provenance is Provenance.UNAUTHENTICATED_IMAGE]
    loose = bundle_from_paths(request.app_roots) if request.app_roots else None
    at = request.at or dt.datetime.now(dt.UTC)
    found = discover(request, loose)
    judges = {id(b): Judge(b.trust, at) for bundles in found.bundles.values()
              for b in bundles if not b.empty}
    auditor = Auditor(Judge(before, at), Judge(after, at), Judge(before.union(after), at),
                      judges)
    chains = ChainSource(request)
    wildcards = any(endpoint.is_wildcard for endpoint in found.findings.sources)
    saved = chains.saved() if wildcards else []
    targets = list(expand_wildcards(found.findings.sources, saved).items())

    def audit(target: tuple[Endpoint, list[Source]]) -> tuple[Row, str | None]:
        return auditor.row(target[0], target[1], chains.get, found.bundles_of(target[0]))

    if request.chains is None and len(targets) > 1:
        with ThreadPoolExecutor(max_workers=request.workers) as pool:
            results = list(pool.map(audit, targets))
    else:
        results = [audit(target) for target in targets]
    problems = found.findings.problems + [problem for _, problem in results if problem]
    return AuditResult([row for row, _ in results], problems, unchecked, at)
