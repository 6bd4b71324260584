"""Progress on a terminal: bars (tqdm) on stderr for the sweep and for flash transfers to a
board, and the device's console lines as they come (`-v`). Nothing is drawn when stderr is not
a terminal: a log or a pipe gets the results only."""

from __future__ import annotations

import os
from typing import Never, TextIO

from tqdm import tqdm

#: A flash transfer shorter than this gets no bar (it is over before one could be read).
MIN_BAR_BYTES = 16 * 1024
_DOING = {"program": "writing flash", "read": "reading flash", "erase": "erasing flash"}


def screen(err: TextIO) -> tuple[int, int]:
    """tqdm's `ncols` and `nrows`: the terminal's size, 80 x 24 where it reports none (a bare
    pseudo-terminal says 0 x 0, and tqdm would then draw nothing)."""
    try:
        size = os.get_terminal_size(err.fileno())
    except (OSError, ValueError):
        return 80, 24
    return size.columns or 80, size.lines or 24


class SweepBar:
    """The sweep's bar: `bar(done, total)` with cut points done and in all."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._bar: tqdm[Never] | None = None

    def __call__(self, done: int, total: int) -> None:
        bar = self._bar
        if bar is None:
            columns, rows = screen(self._err)
            bar = self._bar = tqdm(total=total, desc="sweep", unit=" cut points",
                                   file=self._err, ncols=columns, nrows=rows)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()


class FlashBars:
    """Bars for long flash transfers: `bars(what, done, total)` as `hal.interfaces.FlashProgress`
    (one bar per transfer of MIN_BAR_BYTES or more, gone when it ends)."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._bar: tqdm[Never] | None = None
        self._done = 0

    def __call__(self, what: str, done: int, total: int) -> None:
        if total < MIN_BAR_BYTES:
            return
        bar = self._bar
        if bar is None or done < self._done or bar.total != total:
            self.close()
            columns, rows = screen(self._err)
            bar = self._bar = tqdm(total=total, desc=_DOING.get(what, what), unit="B",
                                   unit_scale=True, unit_divisor=1024, file=self._err,
                                   leave=False, ncols=columns, nrows=rows)
        bar.update(done - self._done)
        self._done = done
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._done = None, 0


class ConsoleEcho:
    """Writes each console line to `err` as the device logs it (`-v`)."""

    def __init__(self, err: TextIO) -> None:
        self._err = err

    def __call__(self, line: str) -> None:
        tqdm.write(line, file=self._err)  # above a bar, if one is drawn
        self._err.flush()
