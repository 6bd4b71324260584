"""cramfs images: the payload of certificate-store (UpdateCertStore) and application images.

`build_cramfs` writes a standard cramfs image byte for byte as util-linux `mkfs.cramfs`
(little-endian, 4096-byte blocks, `-N little`, no `-z` holes, no `-p` pad) writes it from the
same tree with files 0644, directories 0755, files under `bin/` 0755, all owned by 0:0.
`read_cramfs` (in `read`) reads such images back, strictly.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from firmware_model.errors import ImageFormatError, SizeLimitError
from firmware_model.image.cramfs.layout import (
    BLOCK_SIZE,
    CRC_OFFSET,
    FLAG_FSID_VERSION_2,
    FLAG_SORTED_DIRS,
    INODE_SIZE,
    MAX_NAME_BYTES,
    MAX_OFFSET,
    MAX_SIZE,
    S_IFDIR,
    S_IFREG,
    SUPERBLOCK_SIZE,
    Inode,
    Superblock,
    inode_fields,
    pad4,
)

__all__ = ["build_cramfs"]

DIR_MODE = S_IFDIR | 0o755
FILE_MODE = S_IFREG | 0o644
EXEC_MODE = S_IFREG | 0o755
EXEC_DIR = "bin/"


@dataclass
class _File:
    content: bytes
    mode: int
    offset: int = 0  # where its data starts in the image (0 while empty)


@dataclass
class _Dir:
    entries: dict[bytes, _Dir | _File] = field(default_factory=dict)
    offset: int = 0  # where its listing starts in the image (0 while empty)

    def sorted_entries(self) -> list[tuple[bytes, _Dir | _File]]:
        """Entries in the order mkfs.cramfs writes them: by name, as strcmp orders bytes."""
        return sorted(self.entries.items())

    def listing_size(self) -> int:
        """Bytes of this directory's listing: an inode plus a padded name per entry."""
        return sum(INODE_SIZE + pad4(len(name)) for name in self.entries)


def _encode_part(path: str, part: str) -> bytes:
    if part in ("", ".", ".."):
        raise ImageFormatError(f"path {path!r} has an empty, '.' or '..' component")
    try:
        raw = part.encode("utf-8")
    except UnicodeEncodeError:
        raise ImageFormatError(f"path {path!r} is not encodable as UTF-8") from None
    if b"\0" in raw:
        raise ImageFormatError(f"path {path!r} contains a NUL byte")
    if len(raw) > MAX_NAME_BYTES:
        raise ImageFormatError(f"name {part!r} is longer than {MAX_NAME_BYTES} bytes")
    return raw


def _tree(files: Mapping[str, bytes]) -> _Dir:
    """The directory tree the paths describe; ImageFormatError for paths that cannot be."""
    root = _Dir()
    for path, content in files.items():
        if len(content) > MAX_SIZE:
            raise SizeLimitError(f"{path!r} is {len(content)} bytes; cramfs holds {MAX_SIZE}")
        *parents, leaf = [_encode_part(path, part) for part in path.split("/")]
        here = root
        for part in parents:
            node = here.entries.setdefault(part, _Dir())
            if not isinstance(node, _Dir):
                raise ImageFormatError(f"{path!r} needs a directory where a file is")
            here = node
        if leaf in here.entries:
            raise ImageFormatError(f"{path!r} is both a file and a directory")
        mode = EXEC_MODE if path.startswith(EXEC_DIR) else FILE_MODE
        here.entries[leaf] = _File(bytes(content), mode)
    return root


def _preorder_dirs(directory: _Dir) -> Iterator[_Dir]:
    """Non-empty directories in the order mkfs.cramfs lays out their listings."""
    yield directory
    for _, node in directory.sorted_entries():
        if isinstance(node, _Dir) and node.entries:
            yield from _preorder_dirs(node)


def _preorder_files(directory: _Dir) -> Iterator[_File]:
    """Regular files in the order mkfs.cramfs writes their data."""
    for _, node in directory.sorted_entries():
        if isinstance(node, _Dir):
            yield from _preorder_files(node)
        else:
            yield node


def _compress(content: bytes) -> bytes:
    """A file's data as mkfs.cramfs writes it: block-end pointers, zlib blocks, pad to 4.

    The pointers are absolute, so the caller fixes them up by adding the data's offset.
    """
    blocks = [
        zlib.compress(content[start : start + BLOCK_SIZE])
        for start in range(0, len(content), BLOCK_SIZE)
    ]
    table = bytearray()
    end = 4 * len(blocks)
    for block in blocks:
        end += len(block)
        table += end.to_bytes(4, "little")
    body = bytes(table) + b"".join(blocks)
    return body + bytes(pad4(len(body)) - len(body))


def _relocate(body: bytes, offset: int, nblocks: int) -> bytes:
    """`body` from `_compress` with its block pointers moved to start at `offset`."""
    table = bytearray(body[: 4 * nblocks])
    for i in range(nblocks):
        pointer = int.from_bytes(table[4 * i : 4 * i + 4], "little") + offset
        table[4 * i : 4 * i + 4] = pointer.to_bytes(4, "little")
    return bytes(table) + body[4 * nblocks :]


def _check_offset(offset: int, what: str) -> None:
    if offset > MAX_OFFSET:
        raise SizeLimitError(f"{what} would start at {offset:#x}, past cramfs's {MAX_OFFSET:#x}")


def _layout_listings(root: _Dir) -> tuple[list[_Dir], int]:
    """Place each non-empty directory's listing; the directories in order and the end."""
    order = list(_preorder_dirs(root))
    position = SUPERBLOCK_SIZE
    for directory in order:
        size = directory.listing_size()
        if size > MAX_SIZE:
            raise SizeLimitError(f"a directory listing of {size} bytes exceeds {MAX_SIZE}")
        _check_offset(position, "a directory listing")
        directory.offset = position
        position += size
    return order, position


def _layout_data(root: _Dir, start: int) -> tuple[list[bytes], int]:
    """Place each distinct non-empty file's data from `start`; the chunks and block count.

    Identical files share one copy, the first in tree order, as mkfs.cramfs does.
    """
    chunks: list[bytes] = []
    placed: dict[bytes, int] = {}
    position, blocks = start, 0
    for node in _preorder_files(root):
        if not node.content:
            continue
        if node.content in placed:
            node.offset = placed[node.content]
            continue
        _check_offset(position, "file data")
        nblocks = -(-len(node.content) // BLOCK_SIZE)
        body = _relocate(_compress(node.content), position, nblocks)
        node.offset = placed[node.content] = position
        chunks.append(body)
        position += len(body)
        blocks += nblocks
    return chunks, blocks


def _listing(directory: _Dir) -> bytes:
    out = bytearray()
    for name, node in directory.sorted_entries():
        if isinstance(node, _Dir):
            fields = inode_fields(DIR_MODE, node.listing_size(), node.offset)
        else:
            fields = inode_fields(node.mode, len(node.content), node.offset)
        fields["namelen"] = pad4(len(name)) >> 2
        out += Inode.build(fields) + name.ljust(pad4(len(name)), b"\0")
    return bytes(out)


def _count_nodes(directory: _Dir) -> int:
    return sum(
        1 + (_count_nodes(node) if isinstance(node, _Dir) else 0)
        for node in directory.entries.values()
    )


def build_cramfs(
    files: Mapping[str, bytes], *, name: str = "Compressed", edition: int = 0
) -> bytes:
    """A cramfs image holding `files` (path -> content), as `mkfs.cramfs` writes it.

    Paths use '/' and name their directories implicitly (`certs/Baltimore.pem` makes `certs`).
    Output depends only on the input: cramfs stores no timestamps, and entries are sorted.
    `name` is the volume name (at most 16 bytes), `edition` the fsid edition number.
    Raises ImageFormatError for paths that make no tree (empty, '.', '..', NUL, a name over
    252 bytes, a file where a directory is needed), SizeLimitError for a file over 16 MiB - 1
    or an image whose data cannot be addressed.
    """
    volume = name.encode("utf-8")
    if len(volume) > 16:
        raise ImageFormatError(f"volume name {name!r} is longer than 16 bytes")
    if not 0 <= edition < 1 << 32:
        raise ImageFormatError(f"edition {edition} does not fit 32 bits")
    root = _tree(files)
    nodes = 1 + _count_nodes(root)
    order, listings_end = _layout_listings(root)
    chunks, blocks = _layout_data(root, listings_end)
    image = bytearray(SUPERBLOCK_SIZE)
    for directory in order:
        image += _listing(directory)
    for chunk in chunks:
        image += chunk
    image += bytes(-len(image) % BLOCK_SIZE)
    image[:SUPERBLOCK_SIZE] = Superblock.build(
        {
            "size": len(image),
            "flags": FLAG_FSID_VERSION_2 | FLAG_SORTED_DIRS,
            "future": 0,
            "fsid": {"crc": 0, "edition": edition, "blocks": blocks, "files": nodes},
            "name": volume.ljust(16, b"\0"),
            "root": inode_fields(DIR_MODE, root.listing_size(), SUPERBLOCK_SIZE),
        }
    )
    crc = zlib.crc32(image)
    image[CRC_OFFSET : CRC_OFFSET + 4] = crc.to_bytes(4, "little")
    return bytes(image)
