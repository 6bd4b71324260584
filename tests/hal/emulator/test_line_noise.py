"""The emulator's line noise (hal/emulator/line_noise.py)."""

from __future__ import annotations

import random

import pytest

from hal.emulator.line_noise import FaultRates, LineFaults

DATA = bytes(range(256)) * 400  # 102,400 bytes


def test_no_rates_pass_bytes_through_untouched() -> None:
    faults = LineFaults(FaultRates(), random.Random(1))
    assert faults.apply(DATA) == DATA
    assert faults.counts.bytes_seen == len(DATA)


@pytest.mark.parametrize("kind", ["corrupt", "drop", "duplicate"])
def test_each_kind_happens_at_about_its_rate(kind: str) -> None:
    faults = LineFaults(FaultRates(**{kind: 1e-3}), random.Random(7))
    out = b"".join(faults.apply(DATA[i : i + 1000]) for i in range(0, len(DATA), 1000))
    counts = faults.counts
    happened = {"corrupt": counts.corrupted, "drop": counts.dropped,
                "duplicate": counts.duplicated}
    assert 50 <= happened[kind] <= 160  # expected about 102
    assert sum(happened.values()) == happened[kind]
    expected_length = len(DATA) + {"corrupt": 0, "drop": -1, "duplicate": 1}[kind] * happened[kind]
    assert len(out) == expected_length


def test_the_same_seed_gives_the_same_noise() -> None:
    rates = FaultRates(1e-3, 1e-3, 1e-3)
    first = LineFaults(rates, random.Random(3)).apply(DATA)
    second = LineFaults(rates, random.Random(3)).apply(DATA)
    assert first == second != DATA


@pytest.mark.parametrize("rates", [{"corrupt": -0.1}, {"drop": 1.0}, {"corrupt": 0.5, "drop": 0.5}])
def test_impossible_rates_are_refused(rates: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FaultRates(**rates)
