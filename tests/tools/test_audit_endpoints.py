"""Endpoint discovery: app manifests, ELF read-only data (x86 compiled here, ARM built by
hand), command-line endpoints, Applications images built with our own tools."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.tools.audit_lab import app_image, elf32_arm
from tools.audit.apps import from_app_image
from tools.audit.chains import parse_resolve
from tools.audit.endpoints import (
    Endpoint,
    Source,
    from_arguments,
    from_elf,
    from_manifest,
    parse_endpoint,
    strings_endpoints,
)
from tools.audit.errors import BadInputError
from tools.audit.runner import expand_wildcards
from tools.pki import LabPki

C_SOURCE = r"""
#include <stdio.h>
static const char *const endpoints[] = {
    "https://api.lab.test/v1/telemetry",
    "wss://stream.lab.test:8443/live",
    "mqtts://%s.hub.lab.test/devices",
};
static const char config_host[] = "config.lab.test";
static const char not_a_host[] = "settings.json";
int main(void) {
    for (int i = 0; i < 3; i++) puts(endpoints[i]);
    puts(config_host);
    puts(not_a_host);
    return 0;
}
"""

MANIFEST = {
    "SchemaVersion": 1,
    "Name": "AuditLabApp",
    "EntryPoint": "/bin/app",
    "Capabilities": {
        "AllowedConnections": [
            "api.lab.test", "extra.lab.test", "*.hub.lab.test", "*.wild.lab.test", "10.1.2.3",
        ],
    },
}

SHT_PROGBITS, SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 1, 2, 4


@pytest.fixture(scope="module")
def x86_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real executable compiled here, plus a non-allocated section holding a URL that a
    section-aware reader must not report."""
    folder = tmp_path_factory.mktemp("elf")
    (folder / "app.c").write_text(C_SOURCE)
    (folder / "notes.txt").write_bytes(b"https://notes.lab.test/\0")
    subprocess.run(["gcc", "-O0", "-o", folder / "app", folder / "app.c"], check=True)
    subprocess.run(["objcopy", "--add-section", f".lab_notes={folder / 'notes.txt'}",
                    folder / "app", folder / "app.notes"], check=True)
    return (folder / "app.notes").read_bytes()


def test_x86_elf_names_its_urls_and_hosts_from_read_only_data(x86_elf: bytes) -> None:
    found = from_elf(x86_elf, "app")
    assert list(found.sources) == [
        Endpoint("api.lab.test", 443),
        Endpoint("stream.lab.test", 8443),
        Endpoint("*.hub.lab.test", 8883),  # a printf host: a wildcard; mqtts: port 8883
        Endpoint("config.lab.test", 443),
    ]
    assert all(sources == [Source.ELF] for sources in found.sources.values())
    assert b"https://notes.lab.test/" in x86_elf  # present in the file, outside read-only data


def test_arm_elf_is_read_by_section(tmp_path: Path) -> None:
    code = b"\x00\x00\xa0\xe1" * 4 + b"https://in-code.lab.test/\0"  # bytes in .text: not data
    elf = elf32_arm([
        (".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, code),
        (".rodata", SHT_PROGBITS, SHF_ALLOC, b"https://arm.lab.test:8443/x\0edge.lab.test\0"),
        (".data.rel.ro", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, b"wss://relro.lab.test/\0"),
        (".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, b"https://writable.lab.test/\0"),
    ])
    (tmp_path / "arm.elf").write_bytes(elf)
    with (tmp_path / "arm.elf").open("rb") as stream:
        assert ELFFile(stream).header["e_machine"] == "EM_ARM"
    readelf = subprocess.run(["readelf", "-h", tmp_path / "arm.elf"], capture_output=True,
                             text=True, check=True)
    assert "ARM" in readelf.stdout and "ELF32" in readelf.stdout
    assert list(from_elf(elf, "arm.elf").sources) == [
        Endpoint("arm.lab.test", 8443), Endpoint("edge.lab.test"), Endpoint("relro.lab.test"),
    ]


def test_manifest_allowed_connections() -> None:
    found = from_manifest(json.dumps(MANIFEST).encode(), "app_manifest.json")
    assert [str(e) for e in found.sources] == [
        "api.lab.test:443", "extra.lab.test:443", "*.hub.lab.test:443", "*.wild.lab.test:443",
        "10.1.2.3:443",
    ]
    assert found.problems == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Example.COM", Endpoint("example.com")), ("a.test:8443", Endpoint("a.test", 8443)),
     ("[::1]:4443", Endpoint("::1", 4443)), ("127.0.0.1", Endpoint("127.0.0.1")),
     # a name typed on the command line needs no known TLD, nor even a dot
     ("broker:8883", Endpoint("broker", 8883)), ("a:1", Endpoint("a", 1)),
     ("Broker", Endpoint("broker")), ("iot-hub.corp.internal-lab", Endpoint(
         "iot-hub.corp.internal-lab")), ("1st.example", Endpoint("1st.example")),
     # URLs: the scheme's port unless the URL names one
     ("https://h:444/p", Endpoint("h", 444)), ("https://H.lab.test/v1?q=1", Endpoint(
         "h.lab.test")), ("wss://stream:8443/live", Endpoint("stream", 8443)),
     ("mqtts://broker/devices", Endpoint("broker", 8883)),
     ("https://[::1]:4443/", Endpoint("::1", 4443)), ("amqps://queue:5671", Endpoint(
         "queue", 5671))],
)
def test_endpoint_arguments(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [("bad host", "not a host name"), ("-lead", "not a host name"), ("under_score:1",
     "not a host name"), ("1.2.3.4.5", "not a host name"), ("a" * 64, "not a host name"),
     ("broker:0", "out of range"), ("https://h:99999/", "not a URL"),
     ("https:///path", "names no host"), ("amqps://queue", "no default port for 'amqps'"),
     ("http://plain", "no default port for 'http'")],
)
def test_malformed_endpoint_arguments(text: str, reason: str) -> None:
    with pytest.raises(BadInputError, match=reason):
        parse_endpoint(text)


def test_a_one_label_word_is_a_host_as_an_argument_not_in_elf_strings() -> None:
    """The TLD heuristic is for an executable's strings only."""
    assert list(strings_endpoints(b"broker\0broker:8883\0")) == []
    assert list(from_arguments(["broker", "broker:8883"]).sources) == [
        Endpoint("broker"), Endpoint("broker", 8883)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("api.lab.test:443:127.0.0.1", (Endpoint("api.lab.test"), "127.0.0.1")),
     ("api.lab.test:8443:[::1]", (Endpoint("api.lab.test", 8443), "::1")),
     ("broker:8883:gateway", (Endpoint("broker", 8883), "gateway"))],
)
def test_resolve_overrides(text: str, expected: tuple[Endpoint, str]) -> None:
    assert parse_resolve(text) == expected


@pytest.mark.parametrize("text", ["api.lab.test:127.0.0.1", "api.lab.test:x:127.0.0.1",
                                  "api.lab.test:443:not an address"])
def test_malformed_resolve_is_bad_input(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_resolve(text)


def test_bad_arguments_are_problems_the_rest_kept() -> None:
    found = from_arguments(["good.lab.test", "bad host", "x.lab.test:http", "y.lab.test:70000"])
    assert list(found.sources) == [Endpoint("good.lab.test")]
    assert [p.split(":")[0] for p in found.problems] == ["bad host", "x.lab.test", "y.lab.test"]


def test_words_that_are_not_hosts_are_left_alone() -> None:
    data = b"main.c\0device.id\0settings.json\0v1.2.3\0http://plain.lab.test/\0e.g.\0"
    assert list(strings_endpoints(data)) == []


def test_not_an_elf_and_not_json_are_bad_input() -> None:
    with pytest.raises(BadInputError, match="not an ELF"):
        from_elf(b"#!/bin/sh\necho https://x.lab.test\n", "script.sh")
    with pytest.raises(BadInputError, match="not JSON"):
        from_manifest(b"{'AllowedConnections': [}", "app_manifest.json")


def test_app_image_finds_every_endpoint_with_its_source(x86_elf: bytes, lab_pki: LabPki) -> None:
    image = app_image({"app_manifest.json": json.dumps(MANIFEST).encode(), "bin/app": x86_elf},
                      lab_pki.signer("image-signing"))
    found = from_app_image(image, "app.imagepackage")
    assert found.problems == []
    sources = {str(e): ",".join(s) for e, s in found.sources.items()}
    assert sources == {
        "api.lab.test:443": "manifest,elf",
        "extra.lab.test:443": "manifest",
        "*.hub.lab.test:443": "manifest",
        "*.wild.lab.test:443": "manifest",
        "10.1.2.3:443": "manifest",
        "stream.lab.test:8443": "elf",
        "*.hub.lab.test:8883": "elf",
        "config.lab.test:443": "elf",
    }
    saved = [Endpoint("dev1.hub.lab.test"), Endpoint("dev2.hub.lab.test", 8883),
             Endpoint("unrelated.lab.test")]
    targets = {str(e): ",".join(s) for e, s in expand_wildcards(found.sources, saved).items()}
    # each wildcard made concrete by the saved chains it covers, host and port
    assert targets["dev1.hub.lab.test:443"] == "manifest"
    assert targets["dev2.hub.lab.test:8883"] == "elf"
    assert not any(t.startswith("*.hub") for t in targets) and "*.wild.lab.test:443" in targets
    assert "unrelated.lab.test:443" not in targets


def test_app_image_with_a_bad_manifest_still_reads_the_elf(
    x86_elf: bytes, lab_pki: LabPki
) -> None:
    image = app_image({"app_manifest.json": b"not json", "bin/app": x86_elf},
                      lab_pki.signer("image-signing"))
    found = from_app_image(image, "app.imagepackage")
    assert Endpoint("api.lab.test") in found.sources
    assert len(found.problems) == 1
    assert "app_manifest.json: manifest is not JSON" in found.problems[0]


def test_corrupt_or_wrong_images_are_bad_input(x86_elf: bytes, lab_pki: LabPki) -> None:
    image = app_image({"app_manifest.json": b"{}", "bin/app": x86_elf},
                      lab_pki.signer("image-signing"))
    with pytest.raises(BadInputError, match="not an image package"):
        from_app_image(image[:-70] + b"\xff" * 70, "cut.imagepackage")
    with pytest.raises(BadInputError, match="not an image package"):
        from_app_image(b"garbage" * 20, "garbage.imagepackage")
