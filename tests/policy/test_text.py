"""policy.text: counts that read right, and text from outside printed safely."""

from __future__ import annotations

from policy.text import counted, printable


def test_counts_read_as_counted() -> None:
    assert [counted(n, "mode") for n in (0, 1, 2)] == ["0 modes", "1 mode", "2 modes"]
    assert counted(2, "entry", "entries") == "2 entries"


def test_a_peer_s_control_characters_are_shown_not_obeyed() -> None:
    assert printable("bad\x1b[2J\r\nline\x00") == "bad\\x1b[2J\\r\\nline\\x00"
    assert printable("déjà vu ✓") == "déjà vu ✓"


def test_long_text_is_cut_to_its_limit() -> None:
    assert printable("a" * 300, 20) == "a" * 17 + "..."
    assert printable("a" * 20, 20) == "a" * 20
    assert len(printable("\x1b" * 100, 50)) == 50
