"""One symbol's bars as columns: the history an `on_bars` strategy reads without an object per bar.

    class Fast(Strategy):
        def on_bars(self, bars):
            closes = bars.close            # a list; its last entry is the bar that just closed
            if len(closes) > 20 and closes[-1] > max(closes[-21:-1]):
                self.ctx.buy(1.0, symbol=bars.symbol)

A column holds the bars closed so far and nothing later, in a backtest as live: a strategy cannot
read a bar before its close. In a backtest a column the strategies use is read from the data once
(when first used) and grows by one entry per bar, shared by the run's strategies, so nothing is
made per bar but the entries; the engine reads the bar about to open from the data itself
(`source`). Live the columns grow the same way and keep at least `keep` recent bars; `n` is the
number of entries in each column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from tradsys.engine.strategy.base import BarData

COLUMNS = ("ts", "end_ns", "open", "high", "low", "close", "volume", "open_ticks", "high_ticks", "low_ticks",
           "close_ticks")
"""Start and close (ns), the prices as floats and as integer ticks of the instrument, the volume."""
KEEP = 1_000
"""Live: bars kept per symbol unless a strategy asks for more (`ctx.bars(symbol, keep=...)`)."""


class Bars:
    """The bars of `symbol` closed so far, oldest first: `n` of them, the latest at index `n - 1`.

    Columns (lists): ts, end_ns, open, high, low, close, volume, and open_ticks ... close_ticks (the
    prices in ticks, for exact comparisons). `series(name)` gives a column as a polars Series.
    Live histories start empty (`Bars(symbol)`); a backtest's come from its data (`Bars.of`)."""

    ts: list[int]
    end_ns: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float | None]
    open_ticks: list[int]
    high_ticks: list[int]
    low_ticks: list[int]
    close_ticks: list[int]

    def __init__(self, symbol: str, frame: pl.DataFrame | None = None, keep: int = KEEP) -> None:
        self.symbol = symbol
        self.n = 0
        self.keep = keep
        """Live: at least this many recent bars are kept (the oldest go in blocks, moving `n`)."""
        self._frame = frame
        self._sources: dict[str, list[Any]] = {}
        self.feeds: list[tuple[list[Any], list[Any]]] = []
        """Backtest: (column, its source) for each column in use; `advance` moves each by one entry."""
        if frame is None:
            for name in COLUMNS:
                setattr(self, name, [])

    @classmethod
    def of(cls, symbol: str, frame: pl.DataFrame) -> Bars:
        """A backtest's history of `symbol`, the rows of `frame`, none of them closed yet. A column is
        read from the data the first time it is used (a pass over the data), through a descriptor on
        a class of its own that then leaves it: from there on the column is a plain attribute of the
        instance. (A class with `__getattr__`, or a descriptor left shadowing the attribute, would make
        every attribute read of the history slower, and strategies read them at every bar.)"""
        own = type(cls.__name__, (cls,), {name: _Column() for name in COLUMNS})
        return own(symbol, frame)

    def source(self, name: str) -> list[Any]:
        """Backtest: column `name` of every row of the data, closed or not: for the engine's fill
        rules, which read the bar about to open; never handed to a strategy."""
        values = self._sources.get(name)
        if values is None:
            values = self._sources[name] = self._frame.get_column(name).to_list()  # type: ignore[union-attr]
        return values

    def advance(self) -> None:
        """Backtest: the next row has closed."""
        k = self.n
        self.n = k + 1
        for column, source in self.feeds:
            column.append(source[k])

    def series(self, name: str) -> pl.Series:
        """Column `name` of the first `n` bars as a polars Series (a view, not a copy, in a backtest)."""
        if name not in COLUMNS:
            raise KeyError(name)
        if self._frame is not None:
            return self._frame.get_column(name).slice(0, self.n)
        import polars as pl

        return pl.Series(name, getattr(self, name)[:self.n])

    def append(self, bar: BarData, to_ticks: Callable[[str, float], int]) -> None:
        """Live: one more closed bar; `to_ticks(symbol, price)` (the context's) gives its prices in ticks."""
        symbol = bar.symbol
        values = (bar.ts, bar.end_ns, bar.open, bar.high, bar.low, bar.close, bar.volume, to_ticks(symbol, bar.open),
                  to_ticks(symbol, bar.high), to_ticks(symbol, bar.low), to_ticks(symbol, bar.close))
        if self.n >= 2 * self.keep:
            drop = self.n - self.keep
            for name in COLUMNS:
                del getattr(self, name)[:drop]
            self.n -= drop
        for name, value in zip(COLUMNS, values):
            getattr(self, name).append(value)
        self.n += 1

    def __repr__(self) -> str:
        return f"Bars({self.symbol} n={self.n})"


class _Column:
    """One column of a backtest's `Bars`, read on first use (see `Bars.of`)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, bars: Bars | None, owner: type) -> Any:
        if bars is None:
            return self
        source = bars.source(self.name)
        column = source[:bars.n]
        bars.feeds.append((column, source))
        delattr(owner, self.name)
        setattr(bars, self.name, column)
        return column
