"""The device's fuses (OTP): the root-key hash and one anti-rollback counter per component.

Fuse map (32-bit words; bits only ever go 0 -> 1):

    words 0..7    SHA-256 of the root public key (little-endian words), fused at provisioning
    word 8        bit 0: the root-key hash is fused and locked
    words 16..17  keystore security version, a 64-bit thermometer
    words 18..19  store security version, a 64-bit thermometer

A thermometer holding version N has bits 0..N-1 set. Its value is read as the index of its
highest set bit plus one, so a counter never reads lower than any version it was raised to.
Raising the counter to N revokes every version below N: images carrying them no longer boot
or install. The counter is only raised once an image of that version has booted from a
confirmed boot record (see `firmware_model.device.boot`), or by an explicit revocation that the
confirmed image already satisfies (`firmware_model.device.model.Device.revoke`).
"""

from __future__ import annotations

from firmware_model.errors import LayoutError, ProvisioningError
from firmware_model.trust.components import Component
from hal.interfaces import Otp

ROOT_HASH_WORDS = 8
LOCK_WORD = 8
LOCK_BIT = 0x1
COUNTER_WORDS = {Component.KEYSTORE: 16, Component.STORE: 18}
COUNTER_WIDTH = 2
MAX_SECURITY_VERSION = 32 * COUNTER_WIDTH
FUSE_WORDS_NEEDED = max(COUNTER_WORDS.values()) + COUNTER_WIDTH


def _check_bank(otp: Otp) -> None:
    if otp.word_count < FUSE_WORDS_NEEDED:
        raise LayoutError(
            f"the fuse map needs {FUSE_WORDS_NEEDED} OTP words; the device has {otp.word_count}"
        )


def read_root_hash(otp: Otp) -> bytes | None:
    """The fused root-key hash, or None if the device has not been provisioned."""
    _check_bank(otp)
    if not otp.read_word(LOCK_WORD) & LOCK_BIT:
        return None
    return b"".join(otp.read_word(i).to_bytes(4, "little") for i in range(ROOT_HASH_WORDS))


def fuse_root_hash(otp: Otp, root_hash: bytes) -> None:
    """Fuse `root_hash` and lock it; ProvisioningError if another hash is (even partly) there."""
    _check_bank(otp)
    if len(root_hash) != 4 * ROOT_HASH_WORDS:
        raise ProvisioningError(f"a root-key hash is 32 bytes, not {len(root_hash)}")
    words = [int.from_bytes(root_hash[4 * i : 4 * i + 4], "little") for i in range(ROOT_HASH_WORDS)]
    for index, word in enumerate(words):
        present = otp.read_word(index)
        if present & ~word:
            raise ProvisioningError("the fuses already hold another root-key hash")
    locked = read_root_hash(otp)
    if locked is not None and locked != root_hash:
        raise ProvisioningError("the fuses already hold another root-key hash")
    for index, word in enumerate(words):
        otp.blow(index, word)
    otp.blow(LOCK_WORD, LOCK_BIT)


def security_floor(otp: Otp, component: Component) -> int:
    """The lowest security version `component` may have: its counter's value."""
    _check_bank(otp)
    first = COUNTER_WORDS[component]
    bits = 0
    for offset in range(COUNTER_WIDTH):
        bits |= otp.read_word(first + offset) << (32 * offset)
    return bits.bit_length()


def raise_floor(otp: Otp, component: Component, version: int) -> bool:
    """Raise `component`'s counter to `version` (never lowers it); True if fuses were blown.

    LayoutError if `version` does not fit in the counter.
    """
    if not 0 <= version <= MAX_SECURITY_VERSION:
        raise LayoutError(
            f"security version {version} does not fit the {MAX_SECURITY_VERSION}-bit counter"
        )
    if security_floor(otp, component) >= version:
        return False
    bits = (1 << version) - 1
    first = COUNTER_WORDS[component]
    for offset in range(COUNTER_WIDTH):
        word = (bits >> (32 * offset)) & 0xFFFF_FFFF
        if word:
            otp.blow(first + offset, word)
    return True


def floors(otp: Otp) -> dict[Component, int]:
    """Every component's counter."""
    return {component: security_floor(otp, component) for component in Component}
