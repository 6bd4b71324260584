"""Where an app's TLS endpoints come from: its manifest, its executable, the command line.

- manifest: `Capabilities.AllowedConnections` (host names, `*.` wildcards, IP addresses);
- ELF: URLs (https, wss, mqtts) and bare host names in the read-only data sections, read
  section by section with pyelftools (ARM and x86 alike; no blind scan of the file);
- arguments: `HOST[:PORT]` (`[v6addr]:PORT` for IPv6) or a URL (`https://HOST:PORT/path`).
Port 443 unless a URL scheme or an argument says otherwise.

What counts as a host differs by source. A name given on the command line (or in `--resolve`)
is taken at its word: any syntactically valid host name (RFC 1123 labels, one label is enough:
`broker`). A bare word in an executable's strings is a host name only when it also looks like
one (a known TLD, see `_looks_like_host`), so that `main.c` or `device.id` stay words.
"""

from __future__ import annotations

import enum
import io
import ipaddress
import json
import re
import struct
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

from elftools.common.exceptions import ELFError
from elftools.elf.constants import P_FLAGS, SH_FLAGS
from elftools.elf.elffile import ELFFile

from tools.audit.errors import BadInputError

DEFAULT_PORT = 443
SCHEME_PORTS = {"https": 443, "wss": 443, "mqtts": 8883}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_URL = re.compile(
    rb"(?i)\b(https|wss|mqtts)://(\[[0-9a-f:.]+\]|[^/\s:?#\"'<>\\]+)(?::(\d{1,5}))?"
)
_TOKEN = re.compile(rb"[\x21-\x7e]{4,}")
_PRINTF = re.compile(r"%[-+ #0-9.]*[a-z]")
# TLDs a bare word must end in to be taken for a host name (URLs need no such luck):
# common generic ones, the RFC 2606/6761 reserved ones; two-letter country codes need
# three labels, so that `device.id` or `main.cc` stay words.
_GENERIC_TLDS = frozenset(
    {
        "com", "net", "org", "io", "edu", "gov", "mil", "int", "info", "biz", "dev", "app", "cloud",
        "azure", "microsoft", "windows", "test", "example", "invalid", "localhost", "internal",
        "lan", "local",
    }
)
_FILE_SUFFIXES = frozenset(
    {
        "c", "h", "cc", "cpp", "hpp", "o", "a", "so", "py", "js", "json", "txt", "pem", "der",
        "crt", "key", "cer", "csr", "bin", "elf", "img", "log", "cfg", "conf", "ini", "xml", "html",
        "htm", "md", "rst", "toml", "yaml", "yml", "zip", "gz", "tar", "sh", "ld", "map", "lst",
    }
)


class Source(enum.StrEnum):
    """Where an endpoint was found."""

    MANIFEST = "manifest"
    ELF = "elf"
    ARGUMENT = "argument"


@dataclass(frozen=True, order=True)
class Endpoint:
    """A host (name, IP literal or `*.` wildcard, lower case) and a TCP port."""

    host: str
    port: int = DEFAULT_PORT

    @property
    def is_wildcard(self) -> bool:
        return self.host.startswith("*.")

    @cached_property
    def is_ip(self) -> bool:
        return is_ip(self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass
class Findings:
    """Endpoints in the order found, each with every source that named it, and the problems
    met on the way (one line each, naming the input)."""

    sources: dict[Endpoint, list[Source]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, endpoint: Endpoint, source: Source) -> None:
        found = self.sources.setdefault(endpoint, [])
        if source not in found:
            found.append(source)

    def merge(self, other: Findings) -> None:
        for endpoint, sources in other.sources.items():
            for source in sources:
                self.add(endpoint, source)
        self.problems.extend(other.problems)


def is_ip(host: str) -> bool:
    """Whether `host` is an IPv4 or IPv6 literal (host names never end in a digit)."""
    if not host or not (host[-1].isdigit() or ":" in host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_host_name(host: str, *, min_labels: int = 2) -> bool:
    """A syntactically valid DNS name (RFC 1123 labels, lower case) of at least `min_labels`
    labels, whose last label is not all digits (that would be a malformed IP address)."""
    labels = host.split(".")
    return (
        len(labels) >= min_labels
        and len(host) <= 253
        and all(_LABEL.match(x) for x in labels)
        and not labels[-1].isdigit()
    )


def normalise_host(text: str, *, single_label: bool = False) -> str | None:
    """The host in canonical form (lower case, IPs compressed), or None if it is none.

    Names need two labels (or be `localhost`) unless `single_label`: a name a user typed
    (`broker`) is a host even without a dot."""
    host = text.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if is_ip(host):
        return str(ipaddress.ip_address(host))
    if host.startswith("*."):
        return host if is_host_name(host[2:]) else None
    min_labels = 1 if single_label else 2
    return host if is_host_name(host, min_labels=min_labels) or host == "localhost" else None


def wildcard_matches(pattern: str, host: str) -> bool:
    """Whether `*.suffix` covers `host` (any non-empty prefix of labels)."""
    return pattern.startswith("*.") and host.endswith(pattern[1:]) and host != pattern[2:]


def parse_endpoint(text: str) -> Endpoint:
    """An endpoint a user named: `HOST`, `HOST:PORT`, `[v6]`, `[v6]:PORT`, a bare IPv6
    address, or a URL (`SCHEME://HOST[:PORT][/...]`). Any valid host name is accepted, one
    label included; BadInputError else."""
    if "://" in text:
        return _parse_url_argument(text)
    host, port = text, DEFAULT_PORT
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if bracketed:
        host, port = bracketed.group(1), int(bracketed.group(2) or DEFAULT_PORT)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise BadInputError(text, f"port {port_text!r} is not a number")
        port = int(port_text)
    if not 0 < port < 65536:
        raise BadInputError(text, f"port {port} is out of range")
    return Endpoint(_argument_host(host, text), port)


def _argument_host(host: str, text: str) -> str:
    canonical = normalise_host(host, single_label=True)
    if canonical is None:
        raise BadInputError(text, "not a host name or IP address")
    return canonical


def _parse_url_argument(text: str) -> Endpoint:
    """`https://h:444/p` is h:444; without a port, the scheme's (https and wss 443, mqtts
    8883); another scheme needs an explicit port."""
    try:
        url = urllib.parse.urlsplit(text)
        port = url.port
    except ValueError as error:
        raise BadInputError(text, f"not a URL ({error})") from None
    if not url.hostname:
        raise BadInputError(text, "the URL names no host")
    if port is None:
        if url.scheme not in SCHEME_PORTS:
            known = ", ".join(SCHEME_PORTS)
            raise BadInputError(text, f"no default port for {url.scheme!r} URLs ({known} "
                                      "have one): add :PORT")
        port = SCHEME_PORTS[url.scheme]
    if not 0 < port < 65536:
        raise BadInputError(text, f"port {port} is out of range")
    return Endpoint(_argument_host(url.hostname, text), port)


def from_manifest(data: bytes, what: str) -> Findings:
    """Endpoints in an app manifest's `Capabilities.AllowedConnections`.

    Raises BadInputError when the manifest is not a JSON object; an entry that is no host
    becomes a problem and the rest are kept.
    """
    try:
        manifest = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(what, f"manifest is not JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise BadInputError(what, "manifest is not a JSON object")
    capabilities = manifest.get("Capabilities") or {}
    allowed = capabilities.get("AllowedConnections", []) if isinstance(capabilities, dict) else []
    if not isinstance(allowed, list):
        raise BadInputError(what, "Capabilities.AllowedConnections is not a list")
    findings = Findings()
    for entry in allowed:
        host = normalise_host(entry) if isinstance(entry, str) else None
        if host is None:
            findings.problems.append(f"{what}: AllowedConnections entry {entry!r} is no host")
        else:
            findings.add(Endpoint(host), Source.MANIFEST)
    return findings


def _read_only_data(elf: ELFFile) -> Iterator[bytes]:
    """The bytes of every allocated, non-executable, read-only data section (.rodata*,
    .data.rel.ro*); without section headers, the read-only, non-executable segments."""
    if elf.num_sections() == 0:
        for segment in elf.iter_segments():
            flags = segment["p_flags"]
            if segment["p_type"] == "PT_LOAD" and not flags & (P_FLAGS.PF_X | P_FLAGS.PF_W):
                yield segment.data()
        return
    for section in elf.iter_sections():
        flags = section["sh_flags"]
        relro = section.name.startswith(".data.rel.ro")
        if (
            section["sh_type"] == "SHT_PROGBITS"
            and flags & SH_FLAGS.SHF_ALLOC
            and not flags & SH_FLAGS.SHF_EXECINSTR
            and (relro or not flags & SH_FLAGS.SHF_WRITE)
        ):
            yield section.data()


def _wildcard_from_printf(host: str) -> str | None:
    """`%s.example.com` (a format string) is the wildcard `*.example.com`."""
    first, _, rest = host.partition(".")
    if _PRINTF.fullmatch(first) and is_host_name(rest):
        return f"*.{rest}"
    return None


def _url_endpoints(text: bytes) -> Iterator[Endpoint]:
    for match in _URL.finditer(text):
        scheme, host_bytes, port_bytes = match.groups()
        raw = host_bytes.decode("ascii").lower().strip("[]")
        host = normalise_host(raw) or _wildcard_from_printf(raw)
        port = int(port_bytes) if port_bytes else SCHEME_PORTS[scheme.decode().lower()]
        if host is not None and 0 < port < 65536:
            yield Endpoint(host, port)


def _looks_like_host(word: str) -> bool:
    labels = word.split(".")
    tld = labels[-1]
    if not is_host_name(word) or not tld.isalpha() or tld in _FILE_SUFFIXES:
        return False
    return tld in _GENERIC_TLDS or (len(tld) == 2 and len(labels) >= 3)


def _bare_endpoint(token: bytes) -> Endpoint | None:
    word = token.decode("ascii").strip("\"'()[]{}<>,;").lower().rstrip(".")
    host, _, port_text = word.partition(":")
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else None
    if (port_text and port is None) or (port is not None and not 0 < port < 65536):
        return None
    wildcard = _wildcard_from_printf(host)
    if wildcard is None and not _looks_like_host(host):
        return None
    return Endpoint(wildcard or host, port or DEFAULT_PORT)


def strings_endpoints(data: bytes) -> Iterator[Endpoint]:
    """Endpoints named in the NUL-terminated strings of a block of read-only data."""
    for string in data.split(b"\0"):
        for token in _TOKEN.findall(string):
            if b"://" in token:
                yield from _url_endpoints(token)
            else:
                endpoint = _bare_endpoint(token)
                if endpoint is not None:
                    yield endpoint


def from_elf(data: bytes, what: str) -> Findings:
    """Endpoints named in an ELF executable's read-only data; BadInputError if not an ELF."""
    try:
        elf = ELFFile(io.BytesIO(data))
        blocks = list(_read_only_data(elf))
    except (ELFError, ValueError, KeyError, OSError, OverflowError, struct.error) as error:
        raise BadInputError(what, f"not an ELF file ({error})") from None
    findings = Findings()
    for block in blocks:
        for endpoint in strings_endpoints(block):
            findings.add(endpoint, Source.ELF)
    return findings


def from_arguments(texts: Iterable[str]) -> Findings:
    """Endpoints named on the command line; a malformed one becomes a problem."""
    findings = Findings()
    for text in texts:
        try:
            findings.add(parse_endpoint(text), Source.ARGUMENT)
        except BadInputError as error:
            findings.problems.append(str(error))
    return findings
