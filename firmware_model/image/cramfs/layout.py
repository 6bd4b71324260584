"""On-disk layout of cramfs, as util-linux `mkfs.cramfs` writes it (little-endian host order).

Declared once with construct: the declarations are the specification and the writer builds
with them. The reader decodes the same fields with decoders derived from the declarations
(`unpack_inode`, `unpack_superblock`: struct and bit operations, some fifty times faster per
inode than a parse); the tests check decoders and declarations against each other on arbitrary
bytes.
Facts from the Linux kernel's `include/uapi/linux/cramfs_fs.h`:

- superblock, 76 bytes: magic, size, flags, future, signature "Compressed ROMFS",
  fsid (crc, edition, blocks, files), name[16], then the root inode;
- inode, 12 bytes, three little-endian words of bit fields: mode:16 uid:16 /
  size:24 gid:8 / namelen:6 offset:26 (namelen and offset in 4-byte units);
- a directory's data is its entries back to back: inode + name padded with NULs to 4 bytes;
- a regular file's data is a table of u32 block-end pointers, one per 4096-byte block,
  followed by the zlib streams of the blocks (a zero-length block is a hole: zeros).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from construct import (
    BitsInteger,
    BitStruct,
    Bytes,
    ByteSwapped,
    Const,
    Int32ul,
    Struct,
)

from firmware_model.image import derive

CRAMFS_MAGIC = 0x28CD3D45
SIGNATURE = b"Compressed ROMFS"
BLOCK_SIZE = 4096  # mkfs.cramfs uses the page size; 4096 on the MT3620 and on x86-64 hosts
PAD_SIZE = 512  # a boot-padded image (mkfs.cramfs -p) has its superblock here

FLAG_FSID_VERSION_2 = 0x00000001
FLAG_SORTED_DIRS = 0x00000002
FLAG_HOLES = 0x00000100
FLAG_WRONG_SIGNATURE = 0x00000200
FLAG_SHIFTED_ROOT_OFFSET = 0x00000400
FLAG_EXT_BLOCK_POINTERS = 0x00000800
SUPPORTED_FLAGS = FLAG_FSID_VERSION_2 | FLAG_SORTED_DIRS | FLAG_HOLES | FLAG_SHIFTED_ROOT_OFFSET

SUPERBLOCK_SIZE = 76
ROOT_INODE_OFFSET = 64
CRC_OFFSET = 32
INODE_SIZE = 12

MAX_NAME_BYTES = 252  # 6-bit namelen in 4-byte units: 63 * 4
MAX_SIZE = (1 << 24) - 1  # 24-bit size field (file length or directory listing length)
MAX_OFFSET = ((1 << 26) - 1) << 2  # 26-bit offset field in 4-byte units

S_IFMT = 0o170000
S_IFDIR = 0o040000
S_IFREG = 0o100000
S_IFLNK = 0o120000

# The three words read as one little-endian 96-bit integer: byte-swap all 12 bytes and
# the fields run from the most significant bit of the last word down.
Inode = ByteSwapped(
    BitStruct(
        "offset" / BitsInteger(26),
        "namelen" / BitsInteger(6),
        "gid" / BitsInteger(8),
        "size" / BitsInteger(24),
        "uid" / BitsInteger(16),
        "mode" / BitsInteger(16),
    )
)

Fsid = Struct(
    "crc" / Int32ul,
    "edition" / Int32ul,
    "blocks" / Int32ul,
    "files" / Int32ul,
)

#: A regular file's data starts with one of these per block: where the block's zlib stream ends.
BlockPointer = Int32ul

Superblock = Struct(
    "magic" / Const(CRAMFS_MAGIC, Int32ul),
    "size" / Int32ul,
    "flags" / Int32ul,
    "future" / Int32ul,
    "signature" / Const(SIGNATURE),
    "fsid" / Fsid,
    "name" / Bytes(16),
    "root" / Inode,
)


class InodeFields(NamedTuple):
    """The six bit fields of an inode, as `Inode` parses them (offset in 4-byte units)."""

    mode: int
    uid: int
    size: int
    gid: int
    namelen: int
    offset: int


class SuperblockFields(NamedTuple):
    """The superblock's fields, as `Superblock` parses them (fsid flattened)."""

    magic: int
    size: int
    flags: int
    future: int
    signature: bytes
    crc: int
    edition: int
    blocks: int
    files: int
    name: bytes
    root: InodeFields


# The decoders, derived from the declarations above.
#: `unpack_inode(buffer, at)`: the inode at `at` (12 bytes must be there), as `Inode.parse`
#: decodes it.
unpack_inode = derive.bit_fields(Inode, InodeFields._fields, InodeFields)
POINTER = derive.run(BlockPointer, "block pointer").struct
_SUPERBLOCK_HEAD = derive.fields(Superblock, "magic", "size", "flags", "future", "signature",
                                 "fsid", "name")


def unpack_superblock(buffer: bytes | memoryview) -> SuperblockFields:
    """The first 76 bytes as the `Superblock` fields; checks neither magic nor signature.

    Where `Superblock.parse` succeeds, the fields are equal to what it returns.
    """
    head = _SUPERBLOCK_HEAD.unpack(buffer, 0, "cramfs superblock", check=False)
    return SuperblockFields._make([*head, unpack_inode(buffer, ROOT_INODE_OFFSET)])


def inode_fields(mode: int, size: int, offset: int, namelen: int = 0) -> dict[str, Any]:
    """Fields for `Inode.build`: owner root (uid 0, gid 0), `offset` in bytes (4-aligned)."""
    return {
        "mode": mode,
        "uid": 0,
        "size": size,
        "gid": 0,
        "namelen": namelen,
        "offset": offset >> 2,
    }


def pad4(length: int) -> int:
    """`length` rounded up to a multiple of 4."""
    return (length + 3) & ~3
