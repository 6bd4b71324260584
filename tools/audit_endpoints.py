"""Which of an app's TLS endpoints stop working when the certificate store changes.

    python tools/audit_endpoints.py [ENDPOINT ...] [--app APP.imagepackage]
        [--elf FILE] [--manifest app_manifest.json] [--app-roots PATH] --before STORE
        --after STORE [--at DATE] [--chains DIR | --resolve HOST:PORT:ADDR ...]
        [--timeout S] [--json]
        [--store-cert CERT.pem | --store-keystore KS --root-pubkey ROOT.pem]

ENDPOINT is HOST[:PORT] ([v6addr]:PORT for IPv6; any valid host name) or a URL
(https://HOST[:PORT]/..., port 443 unless named; mqtts 8883). STORE is an UpdateCertStore
image package or a PEM bundle. Chains come live over TLS (the full chain the server sends)
unless --chains names a folder of saved `HOST_PORT.pem` chains. Every chain is judged at --at
(default now) against both stores. The date matters: a root that expires between the two
dates fails in both stores, so nothing "breaks" any more (Baltimore CyberTrust Root, removed
from the Azure Sphere store in February 2025, expired on 2025-05-12: audit that change at a
date before, e.g. --at 2025-03-01).

Apps that bring their own roots do not depend on the OS store for those endpoints: see
"app bundle" below.

Store images are authenticated before their roots are read when --store-cert (trust only
this signing certificate) or --store-keystore with --root-pubkey (a keystore image, itself
authenticated against the root public key a device fuses) is given, as `imagetool verify`
takes them; a store image that fails is bad input. Without either, their signatures are not
checked and a note on stderr says so. PEM bundles carry no signature.

verdicts (columns `before` and `after`, JSON keys of the same names):
  ok       the chain verifies for the host against that store at --at
  fail     it does not (see the reason), or the endpoint could not be reached
  unknown  nothing to judge: a wildcard that no named host or saved chain matches, no
           saved chain for the endpoint, or a chain that does not parse
reasons (column `reason`; "before: ...; after: ..." when the two differ):
  no path to the store | the bundled roots (chain ends at ISSUER)    self-signed: NAME
  expired: NAME expired DATE                      expired: NAME not valid before DATE
  name mismatch: certificate is for NAMES
  rejected: ... (any other refusal, in cryptography's words)
  unreachable: connection refused | timed out | cannot resolve the host | handshake dropped
  unresolvable wildcard: ...    no saved chain HOST_PORT.pem    bad chain: ...
`anchor_before` and `anchor_after` name the root a verified path ends at in each store.
app bundle (column `APP BUNDLE`, JSON `app_bundle`): the chain judged at --at against the
roots the app brings itself (curl's CURLOPT_CAINFO, wolfSSL_CTX_load_verify_locations, a
certificate compiled in): every CA or self-signed certificate, PEM or DER, anywhere in any
file of an --app image's filesystem; for --elf, --manifest and ENDPOINT, the files or
folders --app-roots names. `anchor_app_bundle` names the root as `NAME (FILE)`,
`app_bundle_reason` (in the table: `app bundle: ...` in REASON) says why it fails, in the
words above.
  ok       the app's bundled roots verify the chain at --at
  fail     they do not (or the endpoint could not be reached)
  none     the app bundles no root
  unknown  no chain to judge
  An endpoint several apps name (or an app and --app-roots) fares as the weakest of them
  (none < fail < ok), and the note says how they differ; without --app-roots, naming an
  app's endpoint on the command line too changes nothing.
outcome (column `OUTCOME`; JSON `breaks`, `at_risk`, `os_store_only`, `note`):
  breaks   ok before and fail after, and app bundle not ok (or an IoT Hub/DPS endpoint)
  at risk  ok before and fail after, but the app's bundled roots verify it: it breaks if
           the app reaches it through the OS store
  Azure IoT Hub (*.azure-devices.net) and DPS (global.azure-devices-provisioning.net) are
  `os_store_only`: the Azure IoT C SDK on Azure Sphere verifies them against the OS store,
  so a bundled root does not save them.
  The summary counts the endpoints, their verdicts before and after, the app bundles, and
  how many break and are at risk.
Also installed as the console script `audit-endpoints`. Each bad input gets one line on
stderr; the rest of the audit goes on. The exit codes end `--help`.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from cryptography.utils import CryptographyDeprecationWarning

from policy.cli import ExitCode, OneLineParser, epilog, fail, iso_datetime, run_guarded
from tools.audit.chains import parse_resolve
from tools.audit.endpoints import Endpoint
from tools.audit.errors import BadInputError
from tools.audit.report import render_table
from tools.audit.runner import AuditRequest, run_audit
from tools.audit.stores import store_keyring

PROG = "audit-endpoints"
# --help ends with the docstring's reference part (verdicts, reasons), then the exit codes
EPILOG = "verdicts" + (__doc__ or "").partition("\nverdicts")[2].partition("\nAlso installed")[0] \
    + "\n" + epilog({
        ExitCode.OK: "nothing breaks; an endpoint at risk does not count",
        ExitCode.REFUSED: "something breaks: an endpoint is ok before and fail after, and the "
                          "app's bundled roots do not verify it or it is IoT Hub/DPS",
        ExitCode.BAD_INPUT: "also a store that fails authentication, an --app-roots path that "
                            "cannot be read or holds no root, or nothing could be judged while "
                            "something was wrong: a bad input, an endpoint without a chain",
    }, codes=[ExitCode.OK, ExitCode.REFUSED, ExitCode.BAD_INPUT, ExitCode.INTERRUPTED])




def positive_seconds(text: str) -> float:
    """A number of seconds greater than zero (a finite one)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return seconds


def _resolve(text: str) -> tuple[Endpoint, str]:
    try:
        return parse_resolve(text)
    except BadInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG,
        description="Audit TLS endpoints against the certificate store before and after.",
        epilog=EPILOG,
    )
    p.add_argument("hosts", nargs="*", metavar="ENDPOINT",
                   help="an endpoint named directly: HOST[:PORT] or a URL")
    p.add_argument("--app", action="append", type=Path, default=[], metavar="IMAGE",
                   help="an Applications image package (manifest and executables)")
    p.add_argument("--elf", action="append", type=Path, default=[], metavar="FILE")
    p.add_argument("--manifest", action="append", type=Path, default=[], metavar="FILE")
    p.add_argument("--app-roots", action="append", type=Path, default=[], metavar="PATH",
                   help="roots the app bundles, for --elf/--manifest/ENDPOINT input: a PEM or "
                        "DER file, or a folder of them; repeat for more")
    p.add_argument("--before", required=True, type=Path, metavar="STORE")
    p.add_argument("--after", required=True, type=Path, metavar="STORE")
    p.add_argument("--at", type=iso_datetime, metavar="DATE",
                   help="judge at (default: now); a root that expires between the two dates "
                        "fails in both stores: audit a root's removal at a date before it "
                        "expires (Baltimore: before 2025-05-12)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--chains", type=Path, metavar="DIR", help="saved HOST_PORT.pem chains")
    source.add_argument("--resolve", action="append", type=_resolve, default=[],
                        metavar="HOST:PORT:ADDR", help="connect to ADDR for HOST:PORT")
    p.add_argument("--timeout", type=positive_seconds, default=5.0, metavar="S",
                   help="seconds per connection, > 0 (default: 5)")
    p.add_argument("--json", action="store_true", help="a JSON list instead of the table")
    trust = p.add_argument_group("authenticating store images (as imagetool verify)")
    signer = trust.add_mutually_exclusive_group()
    signer.add_argument("--store-cert", type=Path, metavar="CERT.pem",
                        help="store images must be signed with this certificate's key")
    signer.add_argument("--store-keystore", type=Path, metavar="KS",
                        help="store images must be signed with a key of this keystore image "
                             "(needs --root-pubkey)")
    trust.add_argument("--root-pubkey", type=Path, metavar="ROOT.pem",
                       help="the root public key (PEM key or certificate) whose hash a device "
                            "fuses; authenticates --store-keystore")
    return p


def _check_trust_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.store_keystore is not None and args.root_pubkey is None:
        p.error("--store-keystore needs --root-pubkey")
    if args.root_pubkey is not None and args.store_keystore is None:
        p.error("--root-pubkey goes with --store-keystore")
    if args.app_roots and not (args.hosts or args.elf or args.manifest):
        p.error("--app-roots goes with --elf, --manifest or ENDPOINT (an --app image's own "
                "files are searched for its roots)")


def main(argv: Sequence[str] | None = None) -> int:
    """The command: errors become one line on stderr and an exit code, never a traceback;
    a reader that stops reading the output early (`| head`) is no error."""
    return run_guarded(PROG, lambda: _audit(argv))


def _audit(argv: Sequence[str] | None) -> int:
    # public roots and server chains may carry non-positive serials: not this tool's finding
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    p = parser()
    args = p.parse_intermixed_args(argv)  # options between endpoints, as curl takes them
    _check_trust_options(p, args)
    if not (args.hosts or args.app or args.elf or args.manifest):
        return _bad_input("nothing to audit: name HOST[:PORT], --app, --elf or --manifest")
    if args.chains is not None and not args.chains.is_dir():
        return _bad_input(f"{args.chains}: not a folder of saved chains")
    try:
        keyring = store_keyring(args.store_cert, args.store_keystore, args.root_pubkey)
        result = run_audit(AuditRequest(
            before=args.before, after=args.after, hosts=args.hosts, apps=args.app,
            elves=args.elf, manifests=args.manifest, at=args.at, chains=args.chains,
            resolve=dict(args.resolve), timeout=args.timeout, keyring=keyring,
            app_roots=args.app_roots,
        ))
    except BadInputError as error:
        return _bad_input(str(error))
    if result.unauthenticated:
        print(f"{PROG}: note: store images read without checking their signatures: "
              f"{', '.join(result.unauthenticated)} (authenticate them with --store-cert or "
              "--store-keystore and --root-pubkey)", file=sys.stderr)
    for problem in result.problems:
        print(f"{PROG}: {' '.join(problem.split())}", file=sys.stderr)
    if args.json:
        print(json.dumps([row.as_json() for row in result.rows], indent=2))
    else:
        print(render_table(result.rows, result.at))
    return result.exit_code


def _bad_input(message: str) -> int:
    return fail(PROG, message, ExitCode.BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
