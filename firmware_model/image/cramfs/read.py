"""Strict reading of cramfs images; every problem is an ImageFormatError naming its offset."""

from __future__ import annotations

import zlib
from typing import NamedTuple

from firmware_model.errors import ImageFormatError, SizeLimitError
from firmware_model.image.cramfs.layout import (
    BLOCK_SIZE,
    CRAMFS_MAGIC,
    CRC_OFFSET,
    FLAG_FSID_VERSION_2,
    FLAG_SHIFTED_ROOT_OFFSET,
    FLAG_SORTED_DIRS,
    INODE_SIZE,
    PAD_SIZE,
    POINTER,
    ROOT_INODE_OFFSET,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    SIGNATURE,
    SUPERBLOCK_SIZE,
    SUPPORTED_FLAGS,
    InodeFields,
    SuperblockFields,
    unpack_inode,
    unpack_superblock,
)

__all__ = ["DEFAULT_MAX_OUTPUT", "read_cramfs"]

DEFAULT_MAX_OUTPUT = 64 << 20  # a store or an app is far smaller; this bounds a zip bomb


class _Node(NamedTuple):
    """A regular file found in the tree: where its inode sits and what it says."""

    path: str
    at: int
    size: int
    offset: int


def _magic_error(data: bytes) -> ImageFormatError:
    magic = int.from_bytes(data[:4], "little")
    if magic == int.from_bytes(CRAMFS_MAGIC.to_bytes(4, "big"), "little"):
        return ImageFormatError("big-endian cramfs is not supported", 0)
    padded = data[PAD_SIZE : PAD_SIZE + 4]
    if int.from_bytes(padded, "little") == CRAMFS_MAGIC:
        return ImageFormatError("boot-padded cramfs (superblock at 512) is not supported", 0)
    return ImageFormatError(f"no cramfs magic {CRAMFS_MAGIC:#010x} (found {magic:#010x})", 0)


def _image_crc(view: memoryview) -> int:
    """CRC-32 of the image with its CRC field read as zeros (without copying the image)."""
    crc = zlib.crc32(view[:CRC_OFFSET])
    crc = zlib.crc32(bytes(4), crc)
    return zlib.crc32(view[CRC_OFFSET + 4 :], crc)


def _superblock(data: bytes, view: memoryview) -> SuperblockFields:
    """The decoded superblock, after checking magic, signature, flags, size and CRC."""
    if len(data) < SUPERBLOCK_SIZE:
        raise ImageFormatError(f"{len(data)} bytes is too short for a cramfs superblock", 0)
    sb = unpack_superblock(data)
    if sb.magic != CRAMFS_MAGIC:
        raise _magic_error(data)
    if sb.signature != SIGNATURE:
        raise ImageFormatError("no 'Compressed ROMFS' signature", 16)
    if sb.flags & ~SUPPORTED_FLAGS:
        raise ImageFormatError(f"unsupported cramfs flags {sb.flags & ~SUPPORTED_FLAGS:#x}", 8)
    if not sb.flags & FLAG_FSID_VERSION_2:
        raise ImageFormatError("old cramfs format without a CRC", 8)
    if sb.size > len(data):
        raise ImageFormatError(
            f"filesystem size {sb.size} runs past the {len(data)} bytes it comes in", 4)
    if sb.size == 0 or sb.size % BLOCK_SIZE:
        raise ImageFormatError(
            f"filesystem size {sb.size} is not a whole number of {BLOCK_SIZE}-byte blocks "
            "(mkfs.cramfs pads a filesystem to one; a cut to its used length is refused)", 4)
    if sb.size < len(data):
        raise ImageFormatError(f"{len(data) - sb.size} bytes after the filesystem", sb.size)
    if _image_crc(view) != sb.crc:
        raise ImageFormatError(f"CRC {sb.crc:#010x} does not match the image", CRC_OFFSET)
    if sb.files == 0:
        raise ImageFormatError("zero file count", CRC_OFFSET + 12)
    if sb.root.mode & S_IFMT != S_IFDIR:
        raise ImageFormatError("root inode is not a directory", ROOT_INODE_OFFSET)
    if not sb.flags & FLAG_SHIFTED_ROOT_OFFSET and sb.root.offset << 2 != SUPERBLOCK_SIZE:
        raise ImageFormatError(f"bad root offset {sb.root.offset << 2}", ROOT_INODE_OFFSET + 8)
    return sb


def _entry_name(data: bytes, at: int, namelen: int, end: int) -> bytes:
    """The name after the inode at `at`: NUL-padded to 4 bytes, within its listing."""
    start, raw_len = at + INODE_SIZE, namelen << 2
    if raw_len == 0:
        raise ImageFormatError("directory entry with a zero-length name", at + 8)
    if start + raw_len > end:
        raise ImageFormatError(f"name of {raw_len} bytes runs past its directory listing", at + 8)
    raw = data[start : start + raw_len]
    name = raw.rstrip(b"\0")
    if not name or b"\0" in name or raw_len - len(name) > 3:
        raise ImageFormatError("name length does not fit its NUL padding", start)
    if b"/" in name or name in (b".", b".."):
        raise ImageFormatError(f"invalid name {name!r}", start)
    return name


class _Walker:
    """Walks the directory tree from the root, checking every listing once."""

    def __init__(self, data: bytes, sorted_dirs: bool) -> None:
        self.data = data
        self.sorted_dirs = sorted_dirs
        self.listings: dict[int, int] = {}  # start -> end of each directory listing read
        self.files: list[_Node] = []
        self.nodes = 1

    def walk(self, root: InodeFields) -> None:
        stack: list[tuple[str, InodeFields, int]] = [("", root, ROOT_INODE_OFFSET)]
        while stack:
            prefix, inode, at = stack.pop()
            start, end = self._region(inode, at, is_root=not prefix)
            entries = self._entries(start, end)
            self.nodes += len(entries)
            for entry_at, entry, name in entries:
                try:
                    path = prefix + name.decode("utf-8")
                except UnicodeDecodeError:
                    raise ImageFormatError("name is not UTF-8", entry_at + INODE_SIZE) from None
                kind = entry.mode & S_IFMT
                if kind == S_IFDIR:
                    stack.append((path + "/", entry, entry_at))
                elif kind == S_IFREG:
                    self._file(path, entry, entry_at)
                elif kind == S_IFLNK:
                    raise ImageFormatError(f"symbolic link {path!r} in a store", entry_at)
                else:
                    raise ImageFormatError(f"special file {path!r} ({entry.mode:#o})", entry_at)

    def _region(self, inode: InodeFields, at: int, is_root: bool) -> tuple[int, int]:
        start, length = inode.offset << 2, inode.size
        if length == 0 and (is_root or start == 0):
            return start, start
        if length == 0:
            raise ImageFormatError("empty directory with a non-zero offset", at + 8)
        if start < SUPERBLOCK_SIZE:
            raise ImageFormatError(f"directory listing at {start} overlaps the superblock", at + 8)
        if start + length > len(self.data):
            raise ImageFormatError(f"directory listing at {start:#x} runs past the image", at + 4)
        if start in self.listings:
            raise ImageFormatError(f"directory loop: listing at {start:#x} entered twice", at + 8)
        self.listings[start] = start + length
        return start, start + length

    def _entries(self, start: int, end: int) -> list[tuple[int, InodeFields, bytes]]:
        entries: list[tuple[int, InodeFields, bytes]] = []
        position = start
        while position < end:
            if position + INODE_SIZE > end:
                raise ImageFormatError("directory entry runs past its listing", position)
            entry = unpack_inode(self.data, position)
            name = _entry_name(self.data, position, entry.namelen, end)
            if entries and name <= entries[-1][2] and (self.sorted_dirs or name == entries[-1][2]):
                raise ImageFormatError(f"name {name!r} out of order or repeated", position)
            entries.append((position, entry, name))
            position += INODE_SIZE + (entry.namelen << 2)
        return entries

    def _file(self, path: str, inode: InodeFields, at: int) -> None:
        offset = inode.offset << 2
        if (offset == 0) != (inode.size == 0):
            raise ImageFormatError(f"file {path!r} has size {inode.size} at offset {offset}", at)
        self.files.append(_Node(path, at, inode.size, offset))


def _inflate(raw: memoryview, want: int, at: int) -> bytes:
    """One block: a whole zlib stream that inflates to exactly `want` bytes."""
    inflater = zlib.decompressobj()
    try:
        block = inflater.decompress(raw, want + 1)
    except zlib.error as error:
        raise ImageFormatError(f"block does not decompress ({error})", at) from None
    if len(block) != want or inflater.unconsumed_tail:
        raise ImageFormatError(f"block inflates to other than the {want} bytes the size says", at)
    if not inflater.eof:
        raise ImageFormatError("block's zlib stream is truncated", at)
    if inflater.unused_data:
        raise ImageFormatError(f"{len(inflater.unused_data)} stray bytes after a block", at)
    return block


def _file_data(data: memoryview, node: _Node, data_start: int) -> bytes:
    """A file's content from its block pointer table and zlib blocks (`data`: the image)."""
    offset, size, image_end = node.offset, node.size, len(data)
    if offset < data_start:
        raise ImageFormatError(f"data of {node.path!r} lies in the directory listings", node.at + 8)
    table_end = offset + 4 * -(-size // BLOCK_SIZE)
    if table_end > image_end:
        raise ImageFormatError(f"block table of {node.path!r} runs past the image", node.at + 8)
    blocks: list[bytes] = []
    current = table_end
    for index, at in enumerate(range(offset, table_end, 4)):
        (pointer,) = POINTER.unpack_from(data, at)
        if not current <= pointer <= image_end:
            raise ImageFormatError(f"block pointer {pointer:#x} out of range", at)
        if pointer - current > 2 * BLOCK_SIZE:
            raise ImageFormatError(f"compressed block of {pointer - current} bytes", at)
        want = min(BLOCK_SIZE, size - index * BLOCK_SIZE)
        if pointer == current:
            blocks.append(bytes(want))  # a hole
        else:
            blocks.append(_inflate(data[current:pointer], want, current))
        current = pointer
    return blocks[0] if len(blocks) == 1 else b"".join(blocks)


def _check_counts(sb: SuperblockFields, walker: _Walker, distinct: dict[int, _Node]) -> None:
    if walker.nodes != sb.files:
        raise ImageFormatError(
            f"superblock counts {sb.files} inodes, the tree {walker.nodes}", CRC_OFFSET + 12
        )
    blocks = sum(-(-node.size // BLOCK_SIZE) for node in distinct.values())
    if blocks != sb.blocks:
        raise ImageFormatError(
            f"superblock counts {sb.blocks} blocks, the files have {blocks}", CRC_OFFSET + 8
        )


def _listings_end(walker: _Walker) -> int:
    """End of the directory listings, after checking that no two overlap."""
    end = SUPERBLOCK_SIZE
    for start in sorted(walker.listings):
        if start < end:
            raise ImageFormatError("directory listings overlap", start)
        end = walker.listings[start]
    return end


def _distinct_data(files: list[_Node], max_output: int) -> dict[int, _Node]:
    """One file per data offset (identical files share data), within the output budget."""
    distinct: dict[int, _Node] = {}
    for node in files:
        if node.size == 0:
            continue
        first = distinct.setdefault(node.offset, node)
        if first.size != node.size:
            raise ImageFormatError(f"{node.path!r} shares data of another size", node.at)
    total = sum(node.size for node in distinct.values())
    if total > max_output:
        raise SizeLimitError(f"files total {total} bytes, more than the {max_output} allowed", 0)
    return distinct


def read_cramfs(data: bytes, *, max_output: int = DEFAULT_MAX_OUTPUT) -> dict[str, bytes]:
    """Every regular file of a cramfs image by '/'-separated path, sorted by path.

    Empty directories leave no trace in the result. A store holds only regular files and
    directories, so a symbolic link, device, FIFO or socket is an ImageFormatError (not
    skipped). Accepts what util-linux `mkfs.cramfs` writes little-endian, holes (`-z`) and
    an inserted image (`-i`) included; rejects big-endian, boot-padded (`-p`) and
    extended-block-pointer images. Raises ImageFormatError, naming the offset, for a bad
    magic, signature, flags or CRC; the old format without a CRC (no FSID_VERSION_2 flag); a
    size that is not the input's length or not a multiple of 4096 (mkfs.cramfs pads to whole
    blocks); offsets or lengths
    past the image; names that do not fit their length; directory loops or overlapping
    listings; blocks that do not decompress; a file size that disagrees with its blocks;
    counts in the superblock that disagree with the tree. SizeLimitError (an
    ImageFormatError) when the distinct file data exceeds `max_output` bytes.
    """
    data = bytes(data)
    view = memoryview(data)
    sb = _superblock(data, view)
    walker = _Walker(data, bool(sb.flags & FLAG_SORTED_DIRS))
    walker.walk(sb.root)
    data_start = _listings_end(walker)
    distinct = _distinct_data(walker.files, max_output)
    _check_counts(sb, walker, distinct)
    contents = {offset: _file_data(view, node, data_start) for offset, node in distinct.items()}
    return {
        node.path: contents[node.offset] if node.size else b""
        for node in sorted(walker.files, key=lambda node: node.path)
    }
