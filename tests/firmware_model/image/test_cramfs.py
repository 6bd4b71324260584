"""cramfs: util-linux as the oracle, round trips, and robustness of the strict reader."""

from __future__ import annotations

import os
import random
import re
import shutil
import stat
import struct
import subprocess
import zlib
from collections.abc import Mapping
from pathlib import Path

import certifi
import pytest
from construct import ConstError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from firmware_model.errors import ImageFormatError, SizeLimitError
from firmware_model.image.cramfs import build_cramfs, read_cramfs
from firmware_model.image.cramfs.layout import (
    CRAMFS_MAGIC,
    SIGNATURE,
    Inode,
    Superblock,
    unpack_inode,
    unpack_superblock,
)

TOOLS_PACKAGE = "util-linux-extra (Debian/Ubuntu: apt-get install util-linux-extra)"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} not found: the cramfs oracle needs {TOOLS_PACKAGE}")
    return found


@pytest.fixture(scope="module")
def mkfs() -> str:
    return _tool("mkfs.cramfs")


@pytest.fixture(scope="module")
def fsck() -> str:
    return _tool("fsck.cramfs")


# --- helpers: trees on disk, the oracle, and raw image surgery -------------------------------


def _mode_for(path: str) -> int:
    return 0o755 if path.startswith("bin/") else 0o644


def write_tree(root: Path, files: Mapping[str, bytes], empty_dirs: tuple[str, ...] = ()) -> None:
    """`files` on disk under `root` with the modes build_cramfs gives them."""
    root.mkdir()
    for directory in empty_dirs:
        (root / directory).mkdir(parents=True)
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(_mode_for(path))
    for directory, _, _ in os.walk(root):
        Path(directory).chmod(0o755)


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def mkfs_image(mkfs: str, tmp_path: Path, tree: Path, *options: str) -> bytes:
    out = tmp_path / "mkfs.img"
    subprocess.run([mkfs, *options, str(tree), str(out)], check=True, capture_output=True)
    return out.read_bytes()


def fsck_extract(fsck: str, tmp_path: Path, image: bytes) -> Path:
    """fsck.cramfs checks `image` (CRC, layout, decompression) and extracts it."""
    image_file, out = tmp_path / "ours.img", tmp_path / "extracted"
    image_file.write_bytes(image)
    result = subprocess.run(
        [fsck, "-v", f"--extract={out}", str(image_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"fsck.cramfs rejected the image: {result.stderr}"
    return out


def refresh_crc(image: bytes | bytearray) -> bytes:
    """`image` with its fsid CRC recomputed, so the reader looks past the CRC."""
    patched = bytearray(image)
    patched[32:36] = bytes(4)
    patched[32:36] = struct.pack("<I", zlib.crc32(patched))
    return bytes(patched)


def inode_at(image: bytes, name: bytes) -> int:
    """Offset of the inode of the (unique) directory entry called `name`."""
    padded = name + b"\0" * (-len(name) % 4)
    at = image.index(padded) - 12
    assert image.count(padded) == 1
    return at


def patch_inode(image: bytes, at: int, **fields: int) -> bytes:
    """Rewrite bit fields of the 12-byte inode at `at` (arithmetic independent of construct)."""
    w0, w1, w2 = struct.unpack_from("<III", image, at)
    current = {
        "mode": w0 & 0xFFFF,
        "uid": w0 >> 16,
        "size": w1 & 0xFFFFFF,
        "gid": w1 >> 24,
        "namelen": w2 & 0x3F,
        "offset": w2 >> 6,
    }
    current.update(fields)
    packed = struct.pack(
        "<III",
        current["mode"] | current["uid"] << 16,
        current["size"] | current["gid"] << 24,
        current["namelen"] | current["offset"] << 6,
    )
    return image[:at] + packed + image[at + 12 :]


def inode_field(image: bytes, at: int, name: str) -> int:
    w0, w1, w2 = struct.unpack_from("<III", image, at)
    fields: dict[str, int] = {"size": w1 & 0xFFFFFF, "offset": w2 >> 6, "mode": w0 & 0xFFFF}
    return fields[name]


def reads_or_rejects(image: bytes) -> dict[str, bytes] | None:
    """The reader's verdict; anything but a result or ImageFormatError fails the test."""
    try:
        return read_cramfs(image)
    except ImageFormatError as error:
        assert error.offset is not None and 0 <= error.offset <= len(image)
        return None


# --- fixtures: trees that exercise the layout ------------------------------------------------

SAMPLE = {
    "app_manifest.json": b'{"Name": "app"}\n',
    "bin/app": bytes(range(256)) * 40 + os.urandom(7000),  # 17,240 bytes: 5 blocks
    "certs/Baltimore_CyberTrust_Root.pem": b"-----BEGIN CERTIFICATE-----\nA\n" * 20,
    "certs/DigiCert_Global_Root_G2.pem": b"-----BEGIN CERTIFICATE-----\nB\n" * 20,
    "certs/copy.pem": b"-----BEGIN CERTIFICATE-----\nB\n" * 20,  # shared data
    "deep/er/still/empty": b"",
    "deep/er/note.txt": b"n" * 4096,  # exactly one block
}
SAMPLE_IMAGE = build_cramfs(SAMPLE)


def many_files() -> dict[str, bytes]:
    files = {
        f"certs/root_{i:03}.pem": f"certificate {i}\n".encode() * (i % 7 + 1) for i in range(110)
    }
    files.update({f"lib/d{i % 5}/f{i}": os.urandom(i * 37) for i in range(12)})
    files["empty"] = b""
    files["big.bin"] = os.urandom(3 * 4096 + 17) + b"z" * 20000
    return files


def certifi_store() -> dict[str, bytes]:
    """The Mozilla bundle split into certs/<Label>.pem, one root per file."""
    text = Path(certifi.where()).read_text()
    pattern = re.compile(
        r'# Label: "([^"]+)"\n.*?(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n)',
        re.S,
    )
    store: dict[str, bytes] = {}
    for label, pem in pattern.findall(text):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")
        store[f"certs/{stem}.pem"] = pem.encode()
    return store


# --- oracle: util-linux ----------------------------------------------------------------------


@pytest.mark.oracle
def test_build_is_byte_identical_to_mkfs(mkfs: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mkfs.cramfs records file owners; uid 0 (as in CI) is needed to compare bytes")
    files = many_files() | SAMPLE
    write_tree(tmp_path / "tree", files)
    assert build_cramfs(files) == mkfs_image(mkfs, tmp_path, tmp_path / "tree")


@pytest.mark.oracle
def test_fsck_accepts_and_extracts_what_we_write(fsck: str, tmp_path: Path) -> None:
    image = build_cramfs(SAMPLE, name="CertStore", edition=7)
    out = fsck_extract(fsck, tmp_path, image)
    assert read_tree(out) == SAMPLE
    for path in SAMPLE:
        assert stat.S_IMODE((out / path).stat().st_mode) == _mode_for(path), path
    assert stat.S_IMODE((out / "deep/er").stat().st_mode) == 0o755
    assert len(image) % 4096 == 0
    assert image[48:64] == b"CertStore".ljust(16, b"\0")
    assert struct.unpack_from("<I", image, 36) == (7,)


@pytest.mark.oracle
def test_reads_what_mkfs_writes(mkfs: str, tmp_path: Path) -> None:
    files = many_files()
    assert len(files) > 100
    write_tree(tmp_path / "tree", files, empty_dirs=("var/empty", "lib/d9"))
    image = mkfs_image(mkfs, tmp_path, tmp_path / "tree", "-n", "Other", "-e", "3")
    assert read_cramfs(image) == files


@pytest.mark.oracle
def test_reads_mkfs_holes(mkfs: str, tmp_path: Path) -> None:
    files = {"sparse": b"a" + bytes(3 * 4096) + b"b", "zeros": bytes(5000)}
    write_tree(tmp_path / "tree", files)
    image = mkfs_image(mkfs, tmp_path, tmp_path / "tree", "-z")
    assert read_cramfs(image) == files


@pytest.mark.oracle
def test_symlink_is_a_format_error(mkfs: str, tmp_path: Path) -> None:
    write_tree(tmp_path / "tree", {"certs/a.pem": b"a"})
    (tmp_path / "tree" / "certs" / "link.pem").symlink_to("a.pem")
    image = mkfs_image(mkfs, tmp_path, tmp_path / "tree")
    with pytest.raises(ImageFormatError, match=re.escape("symbolic link 'certs/link.pem'")):
        read_cramfs(image)


@pytest.mark.oracle
def test_certifi_store_round_trips_and_passes_fsck(fsck: str, tmp_path: Path) -> None:
    store = certifi_store()
    assert 140 <= len(store) <= 160
    assert "certs/Baltimore_CyberTrust_Root.pem" in store
    assert "certs/DigiCert_Global_Root_G2.pem" in store
    image = build_cramfs(store)
    assert read_cramfs(image) == store
    assert read_tree(fsck_extract(fsck, tmp_path, image)) == store


# --- round trip ------------------------------------------------------------------------------

NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\0"),
    min_size=1,
    max_size=10,
).filter(lambda name: name not in (".", ".."))
PATHS = st.lists(NAMES, min_size=1, max_size=4).map("/".join)
# multi-block contents come from a seed, so examples stay small for hypothesis to generate
RANDOM_BLOCKS = st.builds(
    lambda seed, size: random.Random(seed).randbytes(size),
    st.integers(0, 2**32),
    st.integers(4000, 13000),
)
REPEATED_BLOCKS = st.builds(
    lambda unit, size: (unit * size)[:size],
    st.binary(min_size=1, max_size=8),
    st.integers(4000, 13000),
)
CONTENT = st.one_of(st.binary(max_size=64), RANDOM_BLOCKS, REPEATED_BLOCKS)


def _consistent(files: dict[str, bytes]) -> dict[str, bytes]:
    """Drop paths that another path needs as a directory."""
    directories = {path.rsplit("/", 1)[0] + "/" for path in files if "/" in path}
    return {
        path: content
        for path, content in files.items()
        if not any(d.startswith(path + "/") for d in directories)
    }


TREES = st.dictionaries(PATHS, CONTENT, max_size=12).map(_consistent)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES)
def test_round_trip(files: dict[str, bytes]) -> None:
    image = build_cramfs(files)
    assert read_cramfs(image) == files
    assert build_cramfs(dict(reversed(list(files.items())))) == image


@pytest.mark.oracle
@settings(max_examples=10, deadline=None)
@given(files=TREES)
def test_fsck_accepts_random_trees(
    fsck: str, tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]
) -> None:
    out = fsck_extract(fsck, tmp_path_factory.mktemp("fsck"), build_cramfs(files))
    assert read_tree(out) == files


# --- the reader's struct decoders against the construct declarations -----------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=12, max_size=12), st.integers(0, 7))
@example(bytes(12), 0)
@example(b"\xff" * 12, 3)
@example(bytes(range(1, 13)), 1)
def test_inode_decoder_agrees_with_the_declaration(raw: bytes, lead: int) -> None:
    """unpack_inode reads any 12 bytes, at any offset, as Inode.parse does; Inode builds them."""
    fields = unpack_inode(bytes(lead) + raw + bytes(lead), lead)
    parsed = Inode.parse(raw)
    assert fields._asdict() == {name: parsed[name] for name in fields._fields}
    assert Inode.build(fields._asdict()) == raw


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=76, max_size=76), st.booleans(), st.booleans())
@example(SAMPLE_IMAGE[:76], False, False)
def test_superblock_decoder_agrees_with_the_declaration(
    raw: bytes, with_magic: bool, with_signature: bool
) -> None:
    """unpack_superblock gives Superblock.parse's fields; the parse fails only on the consts."""
    block = bytearray(raw)
    if with_magic:
        block[:4] = struct.pack("<I", CRAMFS_MAGIC)
    if with_signature:
        block[16:32] = SIGNATURE
    fields = unpack_superblock(bytes(block))
    try:
        parsed = Superblock.parse(bytes(block))
    except ConstError:
        assert (fields.magic, fields.signature) != (CRAMFS_MAGIC, SIGNATURE)
        return
    assert fields.root._asdict() == {name: parsed.root[name] for name in fields.root._fields}
    fsid = {name: parsed.fsid[name] for name in ("crc", "edition", "blocks", "files")}
    top = {name: parsed[name] for name in ("magic", "size", "flags", "future", "signature", "name")}
    assert fields._asdict() == top | fsid | {"root": fields.root}


# --- robustness ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=6000))
def test_any_bytes(data: bytes) -> None:
    reads_or_rejects(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 0x1FF))
def test_any_bytes_behind_a_valid_superblock(body: bytes, flags: int) -> None:
    """Random inodes and listings that pass magic, size and CRC, so the walker sees them."""
    image = bytearray(SAMPLE_IMAGE[:76]) + body
    image += bytes(-len(image) % 4096)
    struct.pack_into("<II", image, 4, len(image), flags | 1)
    reads_or_rejects(refresh_crc(image))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(SAMPLE_IMAGE) - 1))
def test_truncation_is_rejected(length: int) -> None:
    with pytest.raises(ImageFormatError):
        read_cramfs(SAMPLE_IMAGE[:length])


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 8 * len(SAMPLE_IMAGE) - 1), st.booleans())
def test_bit_flip(bit: int, fix_crc: bool) -> None:
    """A flipped bit breaks the CRC; with the CRC fixed up, reading still ends cleanly."""
    image = bytearray(SAMPLE_IMAGE)
    image[bit // 8] ^= 1 << (bit % 8)
    if fix_crc:
        reads_or_rejects(refresh_crc(image))
    else:
        with pytest.raises(ImageFormatError):
            read_cramfs(bytes(image))


# --- each strict check, with its offset ------------------------------------------------------


def _rejects(image: bytes, message: str, offset: int) -> None:
    with pytest.raises(ImageFormatError, match=message) as caught:
        read_cramfs(image)
    assert caught.value.offset == offset


def test_bad_magic_and_big_endian() -> None:
    _rejects(b"\0" * 4 + SAMPLE_IMAGE[4:], "no cramfs magic", 0)
    _rejects(SAMPLE_IMAGE[3::-1] + SAMPLE_IMAGE[4:], "big-endian", 0)
    _rejects(SAMPLE_IMAGE[:40], "too short", 0)


def test_bad_crc_and_trailing_bytes() -> None:
    _rejects(SAMPLE_IMAGE[:-1] + b"\1", "CRC", 32)
    _rejects(SAMPLE_IMAGE + bytes(4096), "bytes after the filesystem", len(SAMPLE_IMAGE))


def _with_size(image: bytes, size: int) -> bytes:
    """`image` with its superblock's size field set to `size` (CRC refreshed)."""
    return refresh_crc(image[:4] + size.to_bytes(4, "little") + image[8:])


def test_a_filesystem_cut_to_its_used_length_is_refused_saying_why() -> None:
    """fsck.cramfs takes a filesystem cut to its used length; we do not (mkfs.cramfs pads to
    whole 4096-byte blocks), and the message says which rule fails, not that a size does not
    fit itself."""
    used = -(-len(SAMPLE_IMAGE.rstrip(b"\0")) // 4) * 4
    assert used % 4096
    cut = _with_size(SAMPLE_IMAGE[:used], used)
    _rejects(cut, rf"^filesystem size {used} is not a whole number of 4096-byte blocks "
             r"\(mkfs.cramfs pads a filesystem to one; a cut to its used length is refused\) "
             r"at offset 0x4$", 4)


def test_a_filesystem_size_past_its_payload_is_refused() -> None:
    past = len(SAMPLE_IMAGE) + 4096
    _rejects(_with_size(SAMPLE_IMAGE, past),
             rf"^filesystem size {past} runs past the {len(SAMPLE_IMAGE)} bytes it comes in", 4)
    _rejects(_with_size(SAMPLE_IMAGE, 0), "filesystem size 0 is not a whole number", 4)


def test_directory_offset_past_the_image() -> None:
    at = inode_at(SAMPLE_IMAGE, b"certs")
    image = patch_inode(SAMPLE_IMAGE, at, offset=(len(SAMPLE_IMAGE) - 8) >> 2)
    _rejects(refresh_crc(image), "runs past the image", at + 4)


def test_name_length_that_does_not_fit() -> None:
    at = inode_at(SAMPLE_IMAGE, b"app_manifest.json")
    _rejects(
        refresh_crc(patch_inode(SAMPLE_IMAGE, at, namelen=63)), "runs past its directory", at + 8
    )
    _rejects(refresh_crc(patch_inode(SAMPLE_IMAGE, at, namelen=6)), "NUL padding", at + 12)


def test_directory_loop() -> None:
    at = inode_at(SAMPLE_IMAGE, b"still")
    root_size = inode_field(SAMPLE_IMAGE, 64, "size")
    image = patch_inode(SAMPLE_IMAGE, at, offset=76 >> 2, size=root_size)
    _rejects(refresh_crc(image), "directory loop", at + 8)


def test_decompression_failure() -> None:
    at = inode_at(SAMPLE_IMAGE, b"app_manifest.json")
    data = inode_field(SAMPLE_IMAGE, at, "offset") << 2
    image = bytearray(SAMPLE_IMAGE)
    image[data + 4 + 3] ^= 0xFF  # inside the deflate stream after the 4-byte pointer table
    _rejects(refresh_crc(image), "block", data + 4)


def test_size_that_disagrees_with_the_blocks() -> None:
    at = inode_at(SAMPLE_IMAGE, b"note.txt")
    data = inode_field(SAMPLE_IMAGE, at, "offset") << 2
    _rejects(refresh_crc(patch_inode(SAMPLE_IMAGE, at, size=4095)), "inflates to other", data + 4)


def test_counts_in_the_superblock() -> None:
    image = bytearray(SAMPLE_IMAGE)
    struct.pack_into("<I", image, 44, struct.unpack_from("<I", image, 44)[0] + 1)
    _rejects(refresh_crc(image), "inodes", 44)


def test_output_budget() -> None:
    with pytest.raises(SizeLimitError):
        read_cramfs(SAMPLE_IMAGE, max_output=1000)


# --- what build refuses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "files",
    [{"": b"x"}, {"a/../b": b"x"}, {"a//b": b"x"}, {"a": b"x", "a/b": b"y"}, {"n" * 253: b"x"}],
)
def test_build_refuses_paths_that_make_no_tree(files: dict[str, bytes]) -> None:
    with pytest.raises(ImageFormatError):
        build_cramfs(files)


def test_build_limits() -> None:
    with pytest.raises(SizeLimitError):
        build_cramfs({"huge": bytes(1 << 24)})
    with pytest.raises(ImageFormatError, match="volume name"):
        build_cramfs({}, name="a name longer than 16")
    assert read_cramfs(build_cramfs({"n" * 252: b"x"})) == {"n" * 252: b"x"}
    assert read_cramfs(build_cramfs({})) == {}
