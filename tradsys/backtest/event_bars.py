"""Bars, one event per bar: every strategy callback runs at each bar's close (fill rules: `tradsys.backtest.rules`).

The loop touches the venue only when something can happen: actions wait for their symbol's next
bar open, and a bar sweeps the book only when strategy orders rest on it. Each symbol's bars are a
`Bars` history whose columns are read from the data once; a bar moves its `n`, so `on_bars`
strategies cost one call per bar and nothing else. `on_bar` strategies get a `BarData` per bar.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

import polars as pl

from tradsys.backtest.sim import BIG_QTY, BUY, SELL, ProgressFn, Simulation
from tradsys.engine.strategy import BarData, StrategyRunner
from tradsys.engine.strategy.bars import Bars

Call = tuple[StrategyRunner, Callable[[Any], None], bool]
"""A runner, its bound on_bars or on_bar, and whether it takes the history (else a BarData)."""


def run_bars(sim: Simulation, frame: pl.DataFrame, symbols: tuple[str, ...], progress: ProgressFn | None) -> None:
    """Each bar in turn: deliver the actions waiting for its open, let it trade through resting
    orders, then fire timers and the bar callbacks at its close."""
    BarReplay(sim, frame, symbols).run(progress)


class BarReplay:
    """The run's per-symbol histories, the rows' symbols and close times, and which symbols have
    strategy orders resting (only their bars can fill anything without an action)."""

    def __init__(self, sim: Simulation, frame: pl.DataFrame, symbols: tuple[str, ...]) -> None:
        self.sim = sim
        self.n = frame.height
        if len(symbols) == 1:
            bars = Bars.of(symbols[0], frame)
            self.end_ns = bars.source("end_ns")
            sim.histories = {symbols[0]: bars}
            self.rows: list[str] | None = None
            """Each row's symbol; None when there is one."""
        else:
            sim.histories = {s: Bars.of(s, frame.filter(pl.col("symbol") == s)) for s in symbols}
            self.end_ns = frame.get_column("end_ns").to_list()
            self.rows = frame.get_column("symbol").to_list()
        self.opens: list[int] = frame.get_column("ts").to_list()
        self.start_ns = self.opens[0] if self.opens else 0
        self.closing: list[tuple[int, int, str]] = []
        """The closes due, (end_ns, row, symbol), soonest first: a heap."""
        self.open_bars: set[str] = set()
        """Symbols whose bar has opened and not closed yet."""
        self.symbols = symbols
        self.books = {s: sim.venue.books[s] for s in symbols}
        self.resting: set[str] = set()
        self.calls: list[Call] = []
        self.timer_runners: list[StrategyRunner] = []
        self.live: list[StrategyRunner] = []
        """The runners running when `calls` was made: one that fails or stops never runs again."""
        self.one: Call | None = None
        """The call, in the common case: one symbol and one strategy, with on_bars and no timers."""

    def run(self, progress: ProgressFn | None) -> None:
        sim = self.sim
        sim.last_fn = sim.last_close
        for runner in sim.runners:
            runner.start()
        self.refresh()
        n = self.n
        if n:
            sim.peer_signals.skip_before(self.start_ns)
        step = max(1, n // 200)
        one = (self.rows is None and not self.timer_runners and len(self.calls) == 1 and self.calls[0][2]
               and not sim.peer_signals)
        self.one = self.calls[0] if one else None
        rows = self.rows_of_one if one else self.rows_between
        for start in range(0, n, step):
            if progress is not None:
                progress(start, n)
            rows(start, min(n, start + step))
        self.close_all()
        if progress is not None:
            progress(n, n)

    def refresh(self) -> None:
        """The callbacks of the runners still running (one that failed gets no more bars)."""
        self.live = running = [r for r in self.sim.runners if r.state == "running"]
        self.calls = [(r, r.strategy.on_bars if r.columns else r.strategy.on_bar, r.columns)
                      for r in running if r.wants["on_bar"]]
        self.timer_runners = [r for r in running if r.wants["on_timer"]]

    def rows_of_one(self, start: int, stop: int) -> None:
        """`rows_between` for the common case (`one`), where a row costs the strategy's call and little else."""
        sim, end_ns = self.sim, self.end_ns
        pending, resting = sim.pending, self.resting
        bars = sim.histories[self.symbols[0]]
        symbol = bars.symbol
        runner, on_bars, _ = self.one  # type: ignore[misc]
        if runner.state != "running":
            on_bars = _ignore
        for i in range(start, stop):
            if pending or resting:
                self.bar_open(symbol, bars)
                if runner.state != "running":  # failed in a callback of its orders
                    on_bars = _ignore
            bars.n = i + 1
            for column, source in bars.feeds:
                column.append(source[i])
            sim.now = end_ns[i]
            try:
                on_bars(bars)
            except Exception as exc:  # user code: contain it
                runner.fail("on_bars", exc)
                on_bars = _ignore

    def rows_between(self, start: int, stop: int) -> None:
        """Rows `start` to `stop` - 1 in time order of their events: a bar's open at its `ts`, its close
        (the timers and the bar callbacks) at its `end_ns`, every close due at or before an open first.
        With several symbols a close can come after other symbols' opens (bars of one time, or of a
        longer interval), so an order a strategy makes at a close never reaches a bar that opened
        before it. Peers' signals come before the open or the close they precede."""
        sim = self.sim
        pending, resting, histories = sim.pending, self.resting, sim.histories
        rows, end_ns, opens, closing = self.rows, self.end_ns, self.opens, self.closing
        signals = sim.peer_signals
        bars = histories[self.symbols[0]]
        symbol = bars.symbol
        for i in range(start, stop):
            if rows is not None:
                symbol = rows[i]
                bars = histories[symbol]
            ts = opens[i]
            while closing and (closing[0][0] <= ts or symbol in self.open_bars):
                self.close(heapq.heappop(closing))
            if signals.next_ns <= ts:  # a signal comes before this bar's open
                signals.until(sim, ts)
                self.settle()
            if pending or resting:  # something may happen at this bar's open
                self.bar_open(symbol, bars)
            self.open_bars.add(symbol)
            heapq.heappush(closing, (end_ns[i], i, symbol))

    def close_all(self) -> None:
        """The closes still due after the last open."""
        while self.closing:
            self.close(heapq.heappop(self.closing))

    def close(self, due: tuple[int, int, str]) -> None:
        """A close from `closing` (its row orders closes at one time): the symbol's history moves on a
        bar, then the timers and the strategies' bar callbacks run."""
        end, _row, symbol = due
        sim = self.sim
        self.open_bars.discard(symbol)
        if sim.peer_signals.next_ns <= end:  # a signal comes during the bar
            sim.peer_signals.until(sim, end)
            self.settle()
        bars = sim.histories[symbol]
        bars.advance()
        sim.now = end
        if self.timer_runners:
            for runner in self.timer_runners:
                runner.timers(end)
            if any(r.state != "running" for r in self.live):
                self.refresh()
        bar = None
        for runner, callback, columns in self.calls:
            try:
                if columns:
                    callback(bars)
                else:
                    if bar is None:
                        k, source = bars.n - 1, bars.source
                        bar = BarData(source("ts")[k], end, symbol, source("open")[k], source("high")[k],
                                      source("low")[k], source("close")[k], source("volume")[k])
                    callback(bar)
            except Exception as exc:  # user code: contain it
                runner.fail("on_bars" if columns else "on_bar", exc)
                self.refresh()

    def bar_open(self, symbol: str, bars: Bars) -> None:
        """The open of `symbol`'s next bar (index `bars.n`): the actions waiting for it reach the
        venue, then the bar trades through resting orders (fill rules 2 and 3)."""
        sim = self.sim
        k, source = bars.n, bars.source
        sim.now = ts = source("ts")[k]
        q = sim.pending.get(symbol)
        if q is not None:
            if sim.venue.advance(ts):  # orders expired: any book may have emptied
                for s in self.books:
                    self.rest(s)
            open_ticks = source("open_ticks")[k]
            while q:
                sim.deliver(symbol, q.popleft(), open_ticks)
            del sim.pending[symbol]
            self.rest(symbol)
        if symbol in self.resting:
            book = self.books[symbol]
            low, high = source("low_ticks")[k], source("high_ticks")[k]
            if source("close_ticks")[k] >= source("open_ticks")[k]:
                _through_bid(sim, symbol, book, low)
                _through_ask(sim, symbol, book, high)
            else:
                _through_ask(sim, symbol, book, high)
                _through_bid(sim, symbol, book, low)
            self.rest(symbol)
        self.settle()

    def settle(self) -> None:
        """After callbacks the bar loop does not make itself (orders', signals'): a runner that failed
        gets nothing more."""
        if any(r.state != "running" for r in self.live):
            self.refresh()

    def rest(self, symbol: str) -> None:
        """Whether strategy orders rest on `symbol`'s book, after something may have changed it."""
        book = self.books[symbol]
        if book.best_bid() is None and book.best_ask() is None:
            self.resting.discard(symbol)
        else:
            self.resting.add(symbol)


def _ignore(bars: Bars) -> None:
    """What a strategy that failed gets instead of on_bars."""


def _through_bid(sim: Simulation, sym: str, book: Any, low: int) -> None:
    best = book.best_bid()
    if best is not None and best > low:
        sim.sweep(sym, SELL, low + 1, BIG_QTY)


def _through_ask(sim: Simulation, sym: str, book: Any, high: int) -> None:
    best = book.best_ask()
    if best is not None and best < high:
        sim.sweep(sym, BUY, high - 1, BIG_QTY)
