"""Bars, one event per bar: every strategy callback runs at each bar's close (fill rules: `tradsys.backtest.rules`).

The loop touches the venue only when something can happen: actions wait for their symbol's next
bar open, and a bar sweeps the book only when strategy orders rest on it.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tradsys.backtest.sim import BIG_QTY, BUY, SELL, ProgressFn, Simulation
from tradsys.engine.strategy import BarData

BAR_COLUMNS = ("ts", "end_ns", "symbol", "open", "high", "low", "close", "volume",
               "open_ticks", "high_ticks", "low_ticks", "close_ticks")


def run_bars(sim: Simulation, frame: pl.DataFrame, symbols: tuple[str, ...], progress: ProgressFn | None) -> None:
    """Each bar in turn: deliver the actions waiting for its open, let it trade through resting
    orders, then fire timers and `on_bar` at its close."""
    venue = sim.venue
    runners = sim.runners
    last: dict[str, float] = {}
    sim.last_fn = last.get
    for runner in runners:
        runner.start()
    bar_runners = [r for r in runners if r.wants["on_bar"]]
    timer_runners = [r for r in runners if r.wants["on_timer"]]
    pending = sim.pending
    books = venue.books
    cols = [frame.get_column(c).to_list() for c in BAR_COLUMNS]
    n = frame.height
    step = max(1, n // 200)
    for i, (ts, end, sym, o, h, lo, c, v, ot, ht, lt, ct) in enumerate(zip(*cols)):
        sim.now = ts
        q = pending.get(sym)
        if q:
            venue.advance(ts)
            while q:
                sim.deliver(sym, q.popleft(), ot)
        book = books[sym]
        if book.best_bid() is not None or book.best_ask() is not None:  # resting strategy orders: does this bar trade through them?
            if c >= o:
                _through_bid(sim, sym, book, lt)
                _through_ask(sim, sym, book, ht)
            else:
                _through_ask(sim, sym, book, ht)
                _through_bid(sim, sym, book, lt)
        last[sym] = c
        sim.now = end
        for runner in timer_runners:
            runner.timers(end)
        if bar_runners:
            bar = BarData(ts, end, sym, o, h, lo, c, v)
            for runner in bar_runners:
                if runner.state == "running":
                    runner.call("on_bar", bar)
        if progress is not None and i % step == 0:
            progress(i, n)
    if progress is not None:
        progress(n, n)


def _through_bid(sim: Simulation, sym: str, book: Any, low: int) -> None:
    best = book.best_bid()
    if best is not None and best > low:
        sim.sweep(sym, SELL, low + 1, BIG_QTY)


def _through_ask(sim: Simulation, sym: str, book: Any, high: int) -> None:
    best = book.best_ask()
    if best is not None and best < high:
        sim.sweep(sym, BUY, high - 1, BIG_QTY)
