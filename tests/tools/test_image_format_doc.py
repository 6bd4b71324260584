"""docs/image-format.md says what the tools do: its section names, image-type names, `show`
keys and text, and component GUIDs are read from the document and held to the code, so the
spec an outsider implements from cannot drift from `imagetool show`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from firmware_model.image.package import Section, parse_package
from firmware_model.image.sections import ImageType, SectionId, section_tag
from tests.firmware_model.devicelab import Lab
from tests.fixtures import device_lab
from tools.describe import describe, render_text, section_json
from tools.feed import MANIFEST_COMPONENT

__all__ = ["device_lab"]

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "image-format.md").read_text()
SHOWN = ["certstore-2025-02", "keystore-2024", "manifest-retail", "app-example"]

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number:UserWarning")


def _table_rows(heading: str) -> list[list[str]]:
    """The cells of each row of the first table after `heading` (header rows left out)."""
    after = DOC[DOC.index(heading):]
    rows = []
    for line in after.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif rows:
            break
    return rows[2:]


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@pytest.fixture(scope="module")
def shown(device_lab: Lab) -> dict[str, dict[str, Any]]:
    return {name: describe(parse_package(device_lab.image(name))) for name in SHOWN}


def test_the_section_table_names_each_section_as_show_prints_it() -> None:
    rows = _table_rows("### Sections")
    documented = {int(value, 16): (_ticked(tag)[0], name) for tag, value, name, *_ in rows}
    assert set(documented) == {int(s) for s in SectionId}
    for section_id, (tag, name) in documented.items():
        printed = section_json(Section(section_id, b"", {}, 0))
        assert (section_tag(section_id), printed["name"]) == (tag, name)


def test_the_documented_image_type_names_are_the_tools() -> None:
    paragraph = DOC[DOC.index("Image types are named after"):].split("\n\n")[0]
    listed = dict(re.findall(r"(\d+) ([A-Za-z]+)(?=[,;])", paragraph))
    assert {int(number): name for number, name in listed.items()} == {
        int(t): t.name for t in ImageType}
    assert "`Unknown(N)`" in paragraph


def test_show_json_has_exactly_the_documented_keys(shown: dict[str, dict[str, Any]]) -> None:
    rows = _table_rows("The JSON (`--json`) is one object")
    documented = {key: row[1] for row in rows for key in _ticked(row[0])}
    produced = {key for info in shown.values() for key in info} | {"payload_error"}
    assert produced == set(documented)
    for info in shown.values():
        for key, value in info.items():
            items = value if isinstance(value, list) else []
            for item in items:
                missing = [sub for sub in item if f"`{sub}`" not in documented[key]]
                assert not missing, (key, missing)


def test_the_documented_show_text_is_what_show_prints(device_lab: Lab,
                                                       shown: dict[str, dict[str, Any]]) -> None:
    block = DOC[DOC.index("The text has the same content:"):].split("```")[1].strip("\n")
    documented = block.splitlines()
    info = shown["certstore-2025-02"]
    documented = [line.replace("229b199ad0e195ac4a6ef812853a9a44f2ccd3e4", info["thumbprint"])
                  for line in documented]
    printed = render_text(info).splitlines()
    assert printed[:len(documented)] == documented


def test_a_payload_error_is_the_last_line_indented_two_spaces() -> None:
    text = render_text({"sections": [], "payload_error": "REASON"})
    assert text.splitlines()[-1] == "  Payload: could not be decoded (REASON)"
    assert "`  Payload: could not be decoded (REASON)`" in DOC


def test_the_documented_component_guids_are_the_shipped_recipes() -> None:
    rows = {row[0].split(" ")[0]: _ticked(row[1])[0]
            for row in _table_rows("### Component GUIDs")}
    recipes = REPO / "images" / "recipes"
    for component, recipe in (("keystore", "keystore-2024"), ("store", "certstore-2024")):
        toml = tomllib.loads((recipes / f"{recipe}.toml").read_text())
        assert rows[component] == toml["component_id"]
    assert rows["manifest"] == str(MANIFEST_COMPONENT)
