"""Recorded peers' signals in a backtest: each reaches `on_signal` at its time, as it did live.

A recording is what `tradsys signals listen --json` prints: one signal per line (`time` in epoch
ms). The run hands each, in time order (file order for equal times), to the running strategies that
trade its symbol, through `on_signal` with the same dict as live, `ctx.now` being its time. Against
the data a signal comes after everything before its time and before anything at or after it:

- bars: before the open of a bar starting at or after it, else before the close of the bar it falls
  in, so the strategy sees only the bars closed before it; its orders wait for the symbol's next bar
  open, as on_bar's do (fill rule 1). Timers fire at bar closes, so after the signals of that bar.
- trades: as a timer, before a trade at or after its time; orders arrive `latency_ms` later.

Signals before the data's first row or after its last, and those no strategy trades the symbol of,
reach no strategy; the result counts them (`info["signals"]`) and says so (warnings).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tradsys.data import DataError
from tradsys.signals import InvalidSignal, Signal

if TYPE_CHECKING:
    from tradsys.backtest.sim import Simulation

NEVER: Final = 2**62
"""A time after every signal: none left."""


def load_signals(source: str | Path | Iterable[dict[str, Any]]) -> list[Signal]:
    """The signals of a recording (a JSON-lines file) or of dicts; raises DataError naming the line
    of one that is not a signal or has no time."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise DataError(f"cannot read signals from {path}: {exc.strerror}") from None
        rows: list[tuple[str, Any]] = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"{path}:{number}", json.loads(line)))
                except ValueError as exc:
                    raise DataError(f"{path}:{number}: not JSON: {exc}") from None
    else:
        rows = [(f"signal {number}", doc) for number, doc in enumerate(source, 1)]
    signals = []
    for where, doc in rows:
        try:
            signal = Signal.parse(doc)
        except InvalidSignal as exc:
            raise DataError(f"{where}: not a signal: {exc}") from None
        if signal.time <= 0:
            raise DataError(f"{where}: a recorded signal needs its time (epoch ms)")
        signals.append(signal)
    return signals


class SignalReplay:
    """The run's signals in time order and where the run stands in them (`next_ns`: the next one's time)."""

    def __init__(self, signals: Sequence[Signal] = ()) -> None:
        ordered = sorted(signals, key=lambda s: s.time)  # stable: file order for equal times
        self.times = [s.time * 1_000_000 for s in ordered]
        self.docs = [s.to_doc() for s in ordered]
        self.pos = 0
        self.next_ns = self.times[0] if self.times else NEVER
        self.delivered = 0
        self.unheard = 0
        """Replayed in the data's time, with no running strategy trading their symbol."""
        self.before = 0

    def __len__(self) -> int:
        return len(self.times)

    def skip_before(self, start_ns: int) -> None:
        """Signals before the data's first row are not replayed (counted in `before`)."""
        while self.next_ns < start_ns:
            self.before += 1
            self._advance()

    def until(self, sim: Simulation, t: int) -> None:
        """Hand every signal timed at or before `t`, in order, to the running strategies trading its symbol."""
        while self.next_ns <= t:
            sim.now = self.next_ns
            doc = self.docs[self.pos]
            heard = False
            for runner in sim.runners:
                if runner.state == "running" and doc["symbol"] in runner.ctx.symbols:
                    heard = True
                    runner.call("on_signal", dict(doc))
            if heard:
                self.delivered += 1
            else:
                self.unheard += 1
            self._advance()

    def _advance(self) -> None:
        self.pos += 1
        self.next_ns = self.times[self.pos] if self.pos < len(self.times) else NEVER

    def summary(self) -> dict[str, int]:
        """What became of the recorded signals, once the run is over."""
        return {"recorded": len(self.times), "delivered": self.delivered, "no_strategy": self.unheard,
                "outside_data": self.before + len(self.times) - self.pos}
