"""policy.files: an input path is read only if it is a regular file, and never past a bound."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from policy.files import open_regular, read_regular, read_regular_text


def test_a_fifo_nobody_writes_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file") as caught:
        read_regular(fifo)
    assert caught.value.filename == str(fifo)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_not_read_until_memory_runs_out(path: str) -> None:
    with pytest.raises(OSError, match="not a regular file"):
        read_regular(path)


def test_a_folder_and_a_link_to_a_device_are_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero"
    link.symlink_to("/dev/zero")
    for path in (tmp_path, link):
        with pytest.raises(OSError, match="not a regular file"):
            read_regular(path)


def test_a_file_over_the_bound_is_refused_after_reading_one_byte_past_it(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(bytes(101))
    assert read_regular(path, limit=101) == bytes(101)
    with pytest.raises(OSError, match="larger than 100 bytes") as caught:
        read_regular(path, limit=100)
    assert caught.value.errno == errno.EFBIG


def test_text_that_is_not_utf8_is_an_oserror_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_bytes(b"ok\xff")
    with pytest.raises(OSError, match=r"not UTF-8 text \(byte 2\)"):
        read_regular_text(path)
    path.write_text("é", encoding="utf-8")
    assert read_regular_text(path) == "é"


def test_a_regular_file_opens_blocking_for_writing_and_may_be_created(tmp_path: Path) -> None:
    path = tmp_path / "new"
    fd = open_regular(path, os.O_RDWR | os.O_CREAT)
    try:
        assert os.get_blocking(fd)
        os.write(fd, b"x")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"x"
