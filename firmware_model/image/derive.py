"""Fast readers derived from the construct declarations, once, at import time.

Each layout is declared once, with construct: the declaration parses and builds, and it is the
specification. The boot and update paths read the same few layouts again and again, where a
construct parse costs ten times a `struct` unpack (and construct's own `.compile()` is still
5-10x slower and drops the field path from its errors). So this module walks a declaration
and derives a reader from it:

- a run of fixed-size fields (integers, `Bytes(n)`, `Const`, `Rebuild`, `Checksum`'s stored
  value, `ExprAdapter` over either, `PaddedString`, nested `Struct`s and `Array`s of a fixed
  count) becomes one
  `struct.Struct`, read with one `unpack_from` on the caller's buffer;
- a `Prefixed(IntXX, GreedyBytes)` field (a length-prefixed byte string) ends a run: its prefix
  is read with the run, its bytes are handed back as a span (start, end);
- `ByteSwapped(BitStruct(BitsInteger...))` becomes shifts and masks on little-endian words.

Variable-length parts that depend on earlier values (`Array(this.count, ...)`) are read by the
caller, a field reader at a time. A derived reader fails exactly where and as construct would
name the failure: `strict.field_error` with the field's construct path (`entries -> image_id`)
at the offset where that field starts; the tests hold reader and declaration to each other on
arbitrary bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from construct import (
    Array,
    BitsInteger,
    Bytes,
    Checksum,
    Const,
    Construct,
    ExprAdapter,
    FixedSized,
    FormatField,
    GreedyBytes,
    NullStripped,
    Prefixed,
    Rebuild,
    Renamed,
    StringEncoded,
    Struct,
    Transformed,
)
from construct.lib import bytes2bits, swapbytes

from firmware_model.image.strict import field_error

Buffer = bytes | bytearray | memoryview
_NO_CONST: Any = object()


class NotDerivable(TypeError):
    """A declaration this module cannot turn into a struct reader (a bug in the layout code)."""


@dataclass(frozen=True)
class Leaf:
    """One field as `struct` reads it: its construct path, its format (no byte order), the
    constant it must hold, how its raw value becomes construct's value, whether it is a length
    prefix (its value is a length; the bytes follow it) and whether it is hidden (a name that
    starts with `_`: read for its size, left out of the values)."""

    path: str
    fmt: str
    const: Any = _NO_CONST
    decode: Callable[[Any], Any] | None = None
    prefix: bool = False
    hidden: bool = False

    @property
    def size(self) -> int:
        return struct.calcsize("<" + self.fmt)


def _join(path: str, name: str) -> str:
    return f"{path} -> {name}" if path else name


def _integer_format(fmt: FormatField, path: str) -> str:
    order, code = str(fmt.fmtstr[0]), str(fmt.fmtstr[1:])
    if order not in "<=" and struct.calcsize(code) != 1:
        raise NotDerivable(f"{path}: {fmt.fmtstr} is not little-endian")
    return code


def _padded_string(fmt: StringEncoded, path: str) -> Leaf:
    """`PaddedString(n, encoding)`: n bytes, trailing pad bytes stripped, then decoded."""
    sized = fmt.subcon
    if not (isinstance(sized, FixedSized) and isinstance(sized.length, int)
            and isinstance(sized.subcon, NullStripped)
            and sized.subcon.subcon is GreedyBytes):
        raise NotDerivable(f"{path}: only PaddedString(n, encoding) strings are derivable")
    pad, encoding = bytes(sized.subcon.pad), str(fmt.encoding)

    def decode(raw: bytes) -> str:
        text = raw.rstrip(pad) if len(pad) == 1 else raw
        try:
            return text.decode(encoding)
        except UnicodeDecodeError:
            raise ValueError(f"cannot use encoding {encoding!r} to decode {text!r}") from None

    return Leaf(path, f"{sized.length}s", decode=decode)


def _single(fmt: Construct, path: str) -> Leaf:
    """The leaf of a field that is one value."""
    if isinstance(fmt, FormatField):
        return Leaf(path, _integer_format(fmt, path))
    if isinstance(fmt, Bytes) and isinstance(fmt.length, int):
        return Leaf(path, f"{fmt.length}s")
    if isinstance(fmt, Const):
        inner = _single(fmt.subcon, path)
        return Leaf(path, inner.fmt, const=fmt.value)
    if isinstance(fmt, Rebuild):
        return _single(fmt.subcon, path)
    if isinstance(fmt, Checksum):  # the stored value; what it must equal is the caller's check
        return _single(fmt.checksumfield, path)
    if isinstance(fmt, ExprAdapter):
        inner = _single(fmt.subcon, path)
        adapt = fmt._decode  # construct's own decoder, called as construct calls it
        return Leaf(path, inner.fmt, decode=lambda raw: adapt(raw, None, path))
    if isinstance(fmt, StringEncoded):
        return _padded_string(fmt, path)
    if isinstance(fmt, Prefixed) and fmt.subcon is GreedyBytes:
        return Leaf(path, _integer_format(fmt.lengthfield, path), prefix=True)
    raise NotDerivable(f"{path}: {type(fmt).__name__} is not a fixed-size field")


def leaves(fmt: Construct, path: str = "") -> list[Leaf]:
    """The fields of `fmt` in order, as leaves; NotDerivable for what no run of fixed fields
    (and length prefixes) can read."""
    if isinstance(fmt, Renamed):
        inner = leaves(fmt.subcon, _join(path, fmt.name))
        if fmt.name.startswith("_"):
            return [Leaf(leaf.path, leaf.fmt, leaf.const, leaf.decode, leaf.prefix, True)
                    for leaf in inner]
        return inner
    if isinstance(fmt, Struct):
        return [leaf for sub in fmt.subcons for leaf in leaves(sub, path)]
    if isinstance(fmt, Array) and isinstance(fmt.count, int):
        return [leaf for _ in range(fmt.count) for leaf in leaves(fmt.subcon, path)]
    return [_single(fmt, path)]


Unpack = Callable[..., tuple[Any, ...]]


class Run:
    """Fields laid out back to back, read with one `unpack_from` when they all fit; the values
    of the fields that are not hidden, decoded as construct decodes them.

    `unpack(buffer, at, what, check=True)` is generated as Python source for the run (one
    unpack, the constant checks, the decoders, inline), so it runs as fast as one written by
    hand: the values at `at`; ImageFormatError naming the first field that runs past the
    buffer or, with `check`, breaks its constant (at that field's start). A decoder's
    ValueError (a string that is not its encoding) propagates as construct's would.
    """

    unpack: Unpack

    def __init__(self, fields: Sequence[Leaf]) -> None:
        self.leaves = tuple(fields)
        self.struct = struct.Struct("<" + "".join(leaf.fmt for leaf in self.leaves))
        self.size = self.struct.size
        self._starts = []
        offset = 0
        for leaf in self.leaves:
            self._starts.append(offset)
            offset += leaf.size
        self.unpack = self._generate()

    def index(self, path: str) -> int:
        """Where the field at `path` (the first, for a path an Array repeats) is in the values."""
        visible = [leaf.path for leaf in self.leaves if not leaf.hidden]
        return visible.index(path)

    def _generate(self) -> Unpack:
        names = [f"v{i}" for i in range(len(self.leaves))]
        consts = [f"{name} != c{i}" for i, (name, leaf) in enumerate(zip(names, self.leaves,
                                                                           strict=True))
                  if leaf.const is not _NO_CONST]
        values = [f"d{i}({name})" if leaf.decode is not None else name
                  for i, (name, leaf) in enumerate(zip(names, self.leaves, strict=True))
                  if not leaf.hidden]
        lines = ["def unpack(buffer, at, what, check=True):",
                 f"    if at + {self.size} > len(buffer):",
                 "        raise problem(buffer, at, what, check)",
                 f"    {', '.join(names)}, = unpack_from(buffer, at)"]
        if consts:
            lines += [f"    if check and ({' or '.join(consts)}):",
                      "        raise problem(buffer, at, what, check)"]
        lines.append(f"    return ({', '.join(values)}{',' if len(values) == 1 else ''})")
        scope: dict[str, Any] = {"unpack_from": self.struct.unpack_from,
                                 "problem": self._first_problem}
        for i, leaf in enumerate(self.leaves):
            scope[f"c{i}"], scope[f"d{i}"] = leaf.const, leaf.decode
        exec(compile("\n".join(lines) + "\n", "<derived reader>", "exec"), scope)
        return cast(Unpack, scope["unpack"])

    def _first_problem(self, buffer: Buffer, at: int, what: str, check: bool) -> Exception:
        for start, leaf in zip(self._starts, self.leaves, strict=True):
            begin = at + start
            if begin + leaf.size > len(buffer):
                return field_error(what, leaf.path, begin)
            if check and leaf.const is not _NO_CONST and struct.unpack_from(
                    "<" + leaf.fmt, buffer, begin)[0] != leaf.const:
                return field_error(what, leaf.path, begin)
        raise AssertionError("no field runs past a buffer too short for the run")


class Reader:
    """A declaration of fixed fields and length-prefixed byte strings, read in order: each run
    of fixed fields (and the prefix that ends it) with one unpack; each string as its span."""

    def __init__(self, fmt: Construct, what: str, path: str = "") -> None:
        self.what = what
        self.runs: list[Run] = []
        current: list[Leaf] = []
        for leaf in leaves(fmt, path):
            current.append(leaf)
            if leaf.prefix:
                self.runs.append(Run(current))
                current = []
        self._tail = Run(current) if current else None
        if self._tail is not None:
            self.runs.append(self._tail)

    def read(self, buffer: Buffer, at: int) -> tuple[tuple[Any, ...], int]:
        """The values from `at` (a string's value is its span) and where the declaration ends.
        ImageFormatError as `Run.unpack`; a string that runs past the buffer fails at its
        length prefix, as construct names it."""
        values: list[Any] = []
        for run in self.runs:
            got = run.unpack(buffer, at, self.what)
            at += run.size
            if run is not self._tail:  # a run that ends in a length prefix: then its bytes
                end = at + got[-1]
                if end > len(buffer):
                    raise field_error(self.what, run.leaves[-1].path, at - run.leaves[-1].size)
                values += got[:-1]
                values.append((at, end))
                at = end
            else:
                values += got
        return tuple(values), at


def run(fmt: Construct, path: str = "") -> Run:
    """The one run of fixed fields `fmt` declares (NotDerivable if it has a length prefix)."""
    found = leaves(fmt, path)
    if any(leaf.prefix for leaf in found):
        raise NotDerivable(f"{path or 'the declaration'} holds a length-prefixed string")
    return Run(found)


def field(fmt: Struct, name: str) -> Construct:
    """The declaration of the field `name` of `fmt` (named, so its leaves carry its path)."""
    for sub in fmt.subcons:
        if isinstance(sub, Renamed) and sub.name == name:
            return sub
    raise NotDerivable(f"the declaration has no field {name!r}")


def fields(fmt: Struct, *wanted: str, path: str = "") -> Run:
    """One run of the named fields of `fmt`, which must lie back to back in that order (the
    fixed part of a declaration whose other fields are read by hand)."""
    return Run([leaf for name in wanted for leaf in leaves(field(fmt, name), path)])


def names(fmt: Struct) -> list[str]:
    """The names of a Struct's visible fields, in order (the keys construct parses into)."""
    return [sub.name for sub in fmt.subcons
            if isinstance(sub, Renamed) and not sub.name.startswith("_")]


def dict_reader(fmt: Struct) -> Callable[[Buffer], dict[str, Any]]:
    """A reader of a Struct of single fixed fields into the dict `plain(fmt.parse(data))`
    gives (data exactly its size); ValueError where that parse fails on a string."""
    reader = run(fmt)
    keys = names(fmt)
    if len(keys) != len(reader.leaves):
        raise NotDerivable("dict_reader takes single fields only (no nested Struct or Array)")
    unpack = reader.unpack
    source = ("def read(data):\n"
              f"    {', '.join(f'v{i}' for i in range(len(keys)))}, = "
              "unpack(data, 0, 'section', False)\n"
              f"    return {{{', '.join(f'{key!r}: v{i}' for i, key in enumerate(keys))}}}\n")
    scope: dict[str, Any] = {"unpack": unpack}
    exec(compile(source, "<derived dict reader>", "exec"), scope)
    return cast(Callable[[Buffer], dict[str, Any]], scope["read"])


BitsDecoder = Callable[[Buffer, int], Any]


def bit_fields(fmt: Construct, order: Sequence[str] | None = None,
               make: Callable[..., Any] = tuple) -> BitsDecoder:
    """A decoder of `ByteSwapped(BitStruct(...BitsInteger...))` at an offset of a buffer: its
    fields in `order` (default: declaration order) passed to `make` (default: a tuple).

    The decoder is generated as Python source from the declaration (one `unpack_from` of
    little-endian u32 words, then a shift and a mask per field), so it runs as fast as one
    written by hand; a field that straddles two words reads the bytes as one integer instead.
    """
    if not (isinstance(fmt, Transformed) and fmt.decodefunc is swapbytes
            and isinstance(fmt.subcon, Transformed) and fmt.subcon.decodefunc is bytes2bits
            and isinstance(fmt.subcon.subcon, Struct)):
        raise NotDerivable("bit_fields takes ByteSwapped(BitStruct(...)) only")
    size = int(fmt.decodeamount)
    places: dict[str, tuple[int, int]] = {}  # name -> (shift, width) in the little-endian value
    top = 8 * size  # swapped bytes read MSB first = the bytes read as one little-endian integer
    for sub in fmt.subcon.subcon.subcons:
        if not (isinstance(sub, Renamed) and isinstance(sub.subcon, BitsInteger)
                and not sub.subcon.signed):
            raise NotDerivable("bit_fields takes unsigned BitsInteger fields only")
        top -= sub.subcon.length
        places[str(sub.name)] = (top, int(sub.subcon.length))
    wanted = list(order) if order is not None else list(places)
    return _generate(size, [places[name] for name in wanted], make)


def _generate(size: int, fields: list[tuple[int, int]], make: Callable[..., Any]) -> BitsDecoder:
    by_words = size % 4 == 0 and all(shift // 32 == (shift + width - 1) // 32
                                     for shift, width in fields)
    parts = []
    for shift, width in fields:
        value, bit = (f"w{shift // 32}", shift % 32) if by_words else ("v", shift)
        shifted = f"({value} >> {bit})" if bit else value
        parts.append(shifted if by_words and bit + width == 32 else
                     f"({shifted} & {(1 << width) - 1:#x})")
    if by_words:
        words = ", ".join(f"w{i}" for i in range(size // 4))
        read = f"    {words}, = unpack_from(buffer, at)\n"
    else:
        read = f"    v = int.from_bytes(buffer[at : at + {size}], 'little')\n"
    source = f"def decode(buffer, at):\n{read}    return make({', '.join(parts)})\n"
    scope: dict[str, Any] = {"unpack_from": struct.Struct(f"<{size // 4}I").unpack_from
                             if by_words else None, "make": make}
    exec(compile(source, "<derived bit fields>", "exec"), scope)
    return cast(BitsDecoder, scope["decode"])
