"""Trades: strategies on individual trades, with order latency and a queue model (fill rules:
`tradsys.backtest.rules`).

The replay skips, in a tight loop, every trade that can neither fill a resting strategy order nor
come after a due event (an action arriving, a peer's signal, a timer), unless a strategy wants `on_trade`.
"""

from __future__ import annotations

import polars as pl

from tradsys.backtest.sim import BIG_QTY, BUY, SELL, ProgressFn, Simulation
from tradsys.engine.strategy import TradeData

NEVER = 2**62
"""A time after every event: nothing pending, no timer set."""


def run_trades(sim: Simulation, frame: pl.DataFrame, symbols: tuple[str, ...], progress: ProgressFn | None) -> None:
    TradeReplay(sim, frame).run(progress)


class TradeReplay:
    """The trade columns of one run as lists, where the replay stands in them, and the prices
    beyond which a trade reaches a resting strategy order."""

    def __init__(self, sim: Simulation, frame: pl.DataFrame) -> None:
        self.sim = sim
        self.touch = sim.config.queue == "touch"
        self.symbols = symbols = list(dict.fromkeys(frame.get_column("symbol").to_list())) if frame.height else []
        self.index = index = {s: k for k, s in enumerate(symbols)}
        self.ts = frame.get_column("ts").to_list()
        self.price_ticks = frame.get_column("price_ticks").to_list()
        self.qty_lots = frame.get_column("qty_lots").to_list()
        self.trade_runners = [r for r in sim.runners if r.wants["on_trade"]]
        # floats and sides only when something reads them: each is another pass over a column
        self.prices = frame.get_column("price").to_list() if self.trade_runners else None
        self.sides = frame.get_column("side").to_list() if self.trade_runners or self.touch else None
        self.tick_of = [sim.ticks[s] for s in symbols]
        self.codes = None if len(symbols) == 1 else frame.get_column("symbol").replace_strict(
            index, return_dtype=pl.Int32).to_list()
        """Each row's symbol as its index in `symbols`; None when there is one symbol."""
        self.n = len(self.ts)
        self.pos = 0
        """Rows the strategies have seen: the last trade is row pos - 1."""
        self.books = [sim.venue.books[s] for s in symbols]
        self.lo = [-1] * len(symbols)
        """Per symbol, a trade priced below this reaches a resting bid."""
        self.hi = [NEVER] * len(symbols)
        """Per symbol, a trade priced above this reaches a resting ask."""

    def run(self, progress: ProgressFn | None) -> None:
        sim = self.sim
        sim.last_fn = self.last_price
        sim.now = self.ts[0] if self.n else 0
        for runner in sim.runners:
            runner.start()
        if self.n:
            sim.peer_signals.skip_before(self.ts[0])
        self.thresholds()
        report = None if progress is None else _Report(progress, self.n)
        if self.trade_runners:
            self._every_trade(self.next_event(), report)
        else:
            self._crossings(self.next_event(), report)
        self.pos = self.n
        if progress is not None:
            progress(self.n, self.n)

    def last_price(self, symbol: str) -> float | None:
        ticks = self.last_ticks(symbol)
        if ticks is None:
            return None
        if self.prices is not None and self.codes is None:
            return self.prices[self.pos - 1]
        return ticks * self.tick_of[self.index[symbol]]

    def last_ticks(self, symbol: str) -> int | None:
        k = self.index.get(symbol)
        j = self.pos - 1
        if k is None:
            return None
        codes = self.codes
        if codes is not None:
            while j >= 0 and codes[j] != k:
                j -= 1
        return self.price_ticks[j] if j >= 0 else None

    def thresholds(self) -> None:
        """`lo` and `hi` from the books' best prices, after anything that may have changed them."""
        touch = self.touch
        for k, book in enumerate(self.books):
            bid, ask = book.best_bid(), book.best_ask()
            self.lo[k] = -1 if bid is None else (bid + 1 if touch else bid)
            self.hi[k] = NEVER if ask is None else (ask - 1 if touch else ask)

    def next_event(self) -> int:
        """When the next action arrives, signal comes or timer is due (NEVER if none)."""
        t = self.sim.timed[0][0] if self.sim.timed else NEVER
        if self.sim.peer_signals.next_ns < t:
            t = self.sim.peer_signals.next_ns
        for runner in self.sim.runners:
            nt = runner.ctx.timers.next_ns
            if nt is not None and nt < t and runner.state == "running":
                t = nt
        return t

    def event(self, t_evt: int, i: int) -> int:
        """Deliver actions that arrive at t_evt, then peers' signals, and fire due timers, before trade i;
        returns the next event time."""
        sim = self.sim
        sim.now = t_evt
        self.pos = i
        sim.venue.advance(t_evt)
        timed = sim.timed
        while True:
            while timed and timed[0][0] <= t_evt:
                _, symbol, action = timed.popleft()
                sim.deliver(symbol, action, self.last_ticks(symbol))
            if sim.peer_signals.next_ns <= t_evt:
                sim.peer_signals.until(sim, t_evt)
                sim.now = t_evt
            for runner in sim.runners:
                if runner.state == "running":
                    runner.timers(t_evt)
            t = self.next_event()
            if t > t_evt:  # else a callback asked for something at this very instant (zero latency)
                return t

    def cross(self, symbol: str, price: int, qty: int | None, side: str | None, lo: int) -> None:
        """A trade at `price` goes through (or, with touch, reaches) resting strategy orders."""
        sim, touch = self.sim, self.touch
        lots = BIG_QTY if qty is None else qty
        if price < lo:  # sells through our bids
            if touch and side == "buy" and price == lo - 1:
                return
            sim.sweep(symbol, SELL, price if touch else price + 1, lots)
        else:
            if touch and side == "sell":
                book = sim.venue.books[symbol]
                if book.best_ask() == price:
                    return
            sim.sweep(symbol, BUY, price if touch else price - 1, lots)

    def _every_trade(self, t_evt: int, report: _Report | None) -> None:
        """Every trade goes to `on_trade`; those beyond a threshold cross first."""
        sim = self.sim
        runners, trade_runners, timed, lots = sim.runners, self.trade_runners, sim.timed, sim.lots
        ts_l, pt_l, qty_l, codes, symbols = self.ts, self.price_ticks, self.qty_lots, self.codes, self.symbols
        px_l, side_l = self.prices, self.sides
        lo0, hi0 = self.lo, self.hi
        n = self.n
        i = 0
        while i < n:
            t = ts_l[i]
            if t >= t_evt:
                t_evt = self.event(t_evt, i)
                self.thresholds()
                continue
            k = 0 if codes is None else codes[i]
            p = pt_l[i]
            sim.now = t
            self.pos = i + 1
            if p < lo0[k] or p > hi0[k]:
                self.cross(symbols[k], p, qty_l[i], side_l[i], lo0[k])  # type: ignore[index]
                self.thresholds()
            trade = TradeData(t, symbols[k], px_l[i], None if qty_l[i] is None else qty_l[i] * lots[symbols[k]],  # type: ignore[index]
                              side_l[i])  # type: ignore[index]
            for runner in trade_runners:
                if runner.state == "running":
                    runner.call("on_trade", trade)
            i += 1
            if timed or any(r.ctx.timers.next_ns is not None for r in runners):
                t_evt = self.next_event()
            if report is not None:
                report(i)

    def _crossings(self, t_evt: int, report: _Report | None) -> None:
        """Only trades beyond a threshold, and the events between them, reach the venue."""
        sim = self.sim
        ts_l, pt_l, qty_l, codes, side_l, symbols = self.ts, self.price_ticks, self.qty_lots, self.codes, self.sides, self.symbols
        lo0, hi0 = self.lo, self.hi
        n = self.n
        i = 0
        while i < n:
            j = i
            if codes is None:
                lo, hi = lo0[0], hi0[0]
                while j < n:
                    if ts_l[j] >= t_evt:
                        break
                    p = pt_l[j]
                    if p < lo or p > hi:
                        break
                    j += 1
            else:
                while j < n:
                    if ts_l[j] >= t_evt:
                        break
                    p = pt_l[j]
                    k = codes[j]
                    if p < lo0[k] or p > hi0[k]:
                        break
                    j += 1
            i = j
            self.pos = i
            if i >= n:
                break
            if ts_l[i] >= t_evt:
                t_evt = self.event(t_evt, i)
            else:
                k = 0 if codes is None else codes[i]
                sim.now = ts_l[i]
                self.pos = i + 1
                self.cross(symbols[k], pt_l[i], qty_l[i], None if side_l is None else side_l[i], lo0[k])
                i += 1
                t_evt = self.next_event()
            self.thresholds()
            if report is not None:
                report(i)


class _Report:
    """Calls `progress` about every 1/200 of the rows, however far the replay jumps at a time."""

    def __init__(self, progress: ProgressFn, n: int) -> None:
        self.progress = progress
        self.n = n
        self.step = max(1, n // 200)
        self.due = 0

    def __call__(self, i: int) -> None:
        if i >= self.due:
            self.progress(i, self.n)
            self.due = i + self.step
