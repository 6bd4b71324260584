"""`signing.der_signature` writes what cryptography's `encode_dss_signature` writes."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import utils
from hypothesis import given
from hypothesis import strategies as st

from firmware_model.image.signing import der_signature

EDGES = [bytes(32), b"\x80" + bytes(31), b"\x00\x01" + bytes(30), b"\xff" * 32,
         b"\x00" * 31 + b"\x80", b"\x7f" + b"\xff" * 31]


def _theirs(r: bytes, s: bytes) -> bytes:
    return bytes(utils.encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big")))


def test_edges_match_cryptography() -> None:
    for r in EDGES:
        for s in EDGES:
            assert der_signature(r, s) == _theirs(r, s)


@given(st.sampled_from([32, 48]).flatmap(
    lambda width: st.tuples(st.binary(min_size=width, max_size=width),
                            st.binary(min_size=width, max_size=width))))
def test_random_match_cryptography(pair: tuple[bytes, bytes]) -> None:
    r, s = pair
    assert der_signature(r, s) == _theirs(r, s)
