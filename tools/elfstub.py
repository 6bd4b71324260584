"""A stand-in executable for an Applications recipe: a small, valid ELF32 little-endian ARM
executable (what an Azure Sphere high-level app is) whose `.rodata` holds given strings.

It is not a program (its code is one `bx lr`): it stands where an app's real executable would,
for what this project reads out of one, the host names and URLs in its read-only data (the
endpoint audit). `readelf -a` and pyelftools read it like any other executable.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

BASE = 0x10000
_EHDR, _PHDR, _SHDR = 52, 32, 40
_THUMB_BX_LR = b"\x70\x47"  # the whole program: return
_EM_ARM, _ET_EXEC, _PT_LOAD = 40, 2, 1
_SHT_PROGBITS, _SHT_STRTAB = 1, 3
_SHF_ALLOC, _SHF_EXECINSTR = 0x2, 0x4
_PF_X, _PF_R = 0x1, 0x4
_EABI5_HARD_FLOAT = 0x05000400


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def arm_executable(strings: Sequence[str]) -> bytes:
    """The executable: `.text`, then `.rodata` holding each of `strings` NUL-terminated (UTF-8),
    then `.shstrtab`; one read-and-execute PT_LOAD segment maps `.text` and `.rodata`."""
    text = _pad4(_THUMB_BX_LR)
    rodata = _pad4(b"".join(s.encode() + b"\0" for s in strings))
    names = b"\0.text\0.rodata\0.shstrtab\0"
    text_at = _EHDR + _PHDR
    rodata_at = text_at + len(text)
    names_at = rodata_at + len(rodata)
    sections_at = names_at + len(_pad4(names))
    loaded = len(text) + len(rodata)
    header = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIIIIIHHHHHH", _ET_EXEC, _EM_ARM, 1, BASE + text_at | 1, _EHDR, sections_at,
        _EABI5_HARD_FLOAT, _EHDR, _PHDR, 1, _SHDR, 4, 3)
    segment = struct.pack("<8I", _PT_LOAD, text_at, BASE + text_at, BASE + text_at, loaded,
                          loaded, _PF_R | _PF_X, 4)
    sections = b"".join([
        bytes(_SHDR),
        struct.pack("<10I", 1, _SHT_PROGBITS, _SHF_ALLOC | _SHF_EXECINSTR, BASE + text_at,
                    text_at, len(_THUMB_BX_LR), 0, 0, 4, 0),
        struct.pack("<10I", 7, _SHT_PROGBITS, _SHF_ALLOC, BASE + rodata_at, rodata_at,
                    len(rodata), 0, 0, 4, 0),
        struct.pack("<10I", 15, _SHT_STRTAB, 0, 0, names_at, len(names), 0, 0, 1, 0),
    ])
    return header + segment + text + rodata + _pad4(names) + sections
