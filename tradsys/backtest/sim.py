"""One backtest run: a real `Venue`, the strategy runners, their pending actions and the fills.

The run modes (`vectorised`, `event_bars`, `trades`) drive a `Simulation`: they move its clock,
deliver the strategies' actions under the fill rules of `tradsys.backtest.rules` and have the
market sweep resting orders; `tradsys.backtest.result` turns what it recorded into a result.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from tradsys.backtest.config import DEFAULT_BACKTEST_LIMITS, BacktestConfig
from tradsys.backtest.rules import MARKET_ACCOUNT
from tradsys.backtest.signals import SignalReplay
from tradsys.engine import (
    Instrument, Order, OrderAccepted, OrderFilled, OrderRejected, OrderType, Side, TimeInForce, Venue, VenueConfig,
    new_order,
)
from tradsys.engine.strategy import StrategyRunner
from tradsys.engine.strategy.bars import Bars

BUY, SELL = Side.BUY, Side.SELL
LIMIT = OrderType.LIMIT
GTC, IOC = TimeInForce.GTC, TimeInForce.IOC
BIG_QTY = 10**9
"""A sweep with no quantity of its own (a bar, a trade of unknown size) takes everything it reaches."""

ProgressFn = Callable[[int, int], None]
"""progress(rows done, rows in all), called now and then by a run."""


class Simulation:
    """One run: the venue, the runners, the pending actions and the fills."""

    def __init__(self, config: BacktestConfig, instruments: list[Instrument], kind: str) -> None:
        self.config = config
        self.kind = kind
        self.venue = venue = Venue(instruments, VenueConfig(
            maker_fee_bps=Decimal(str(config.maker_fee_bps)), taker_fee_bps=Decimal(str(config.taker_fee_bps)),
            initial_balances={config.currency: Decimal(str(config.initial_capital))}))
        for key, value in DEFAULT_BACKTEST_LIMITS.items():
            venue.set_limit(key, value)
        for key in ("max_orders_per_second", "max_order_notional", "max_position", "daily_loss_limit"):
            venue.set_limit(key, None, account=MARKET_ACCOUNT)
        for ccy in {i.quote for i in instruments}:
            venue.deposit(MARKET_ACCOUNT, ccy, Decimal(10**13))
        self.now = 0
        self.runners: list[StrategyRunner] = []
        self.pending: dict[str, deque] = {}
        """Bars: per symbol, actions waiting for the symbol's next bar open."""
        self.timed: deque = deque()
        """Trades: (arrival ns, symbol, action) in arrival order."""
        self.latency_ns = int(config.latency_ms * 1_000_000)
        self.slip = config.slippage_bps / 10_000
        self.fills: list[tuple] = []
        self.rejections: dict[str, int] = {}
        self.orders_sent = 0
        self.mid = 0
        """The last market order's number (ids m1, m2, ...)."""
        self.last_fn: Callable[[str], float | None] = {}.get
        """The last price of a symbol; each run mode sets its own."""
        self.ticks = {s: float(i.tick_size) for s, i in venue.instruments.items()}
        self.lots = {s: float(i.lot_size) for s, i in venue.instruments.items()}
        self.owners: dict[str, str] = {}
        """account -> runner id, for the fills table."""
        self.histories: dict[str, Bars] = {}
        """Bars: each symbol's history, shared by the strategies (`ctx.bars`); the run moves its `n`."""
        self.peer_signals = SignalReplay()
        """Recorded peers' signals the run hands to `on_signal` at their times (none unless given)."""

    def add_runner(self, runner: StrategyRunner) -> None:
        self.runners.append(runner)
        self.owners[runner.ctx.account] = runner.id

    def last_price(self, symbol: str) -> float | None:
        return self.last_fn(symbol)

    def last_close(self, symbol: str) -> float | None:
        """Bars: the close of the symbol's latest bar."""
        bars = self.histories.get(symbol)
        return None if bars is None or bars.n == 0 else bars.close[bars.n - 1]

    def bars(self, symbol: str) -> Bars:
        """The symbol's history; one without bars when the run has none of it (or is on trades)."""
        bars = self.histories.get(symbol)
        if bars is None:
            bars = self.histories[symbol] = Bars(symbol)
        return bars

    def queue(self, symbol: str, action: tuple) -> None:
        if self.kind == "bars":
            q = self.pending.get(symbol)
            if q is None:
                q = self.pending[symbol] = deque()
            q.append(action)
        else:
            self.timed.append((self.now + self.latency_ns, symbol, action))

    def dispatch(self, events: list) -> None:
        if not events:
            return
        fills, owners = self.fills, self.owners
        for event in events:
            if type(event) is OrderFilled:
                order = event.taker
                if order.account != MARKET_ACCOUNT:
                    side = "buy" if order.side is BUY else "sell"  # not side.value: an enum property is a Python call
                    fills.append((event.ts, owners.get(order.account, order.account), order.id, event.symbol, side,
                                  event.price, event.qty, event.taker_fee, "taker"))
                order = event.maker
                if order.account != MARKET_ACCOUNT:
                    side = "buy" if order.side is BUY else "sell"
                    fills.append((event.ts, owners.get(order.account, order.account), order.id, event.symbol, side,
                                  event.price, event.qty, event.maker_fee, "maker"))
            elif type(event) is OrderRejected and event.account != MARKET_ACCOUNT:  # type: ignore[union-attr]
                self.rejections[event.reason] = self.rejections.get(event.reason, 0) + 1  # type: ignore[union-attr]
        for runner in self.runners:
            runner.events(events)

    def market_order(self, symbol: str, side: Side, price: int, qty: int, tif: TimeInForce) -> list:
        self.mid += 1
        order = new_order(f"m{self.mid}", MARKET_ACCOUNT, symbol, side, LIMIT, qty, price, None, tif, False, False, None, None,
                          self.now)
        return self.venue.place(order)

    def deliver(self, symbol: str, action: tuple, ref: int | None) -> None:
        """One strategy action reaches the venue; `ref` (ticks) is where the market is now: the bar's
        open or the last trade, against which market and marketable limit orders fill."""
        venue = self.venue
        op = action[0]
        if op == "cancel":
            self.dispatch(venue.cancel(action[1], self.now, action[2]))
            return
        if op == "amend":
            self.dispatch(venue.amend(action[1], price=action[3], qty=action[4], ts=self.now, account=action[2]))
            return
        order: Order = action[1]
        order.created_ns = order.updated_ns = self.now
        self.orders_sent += 1
        liquidity = None
        if ref is not None and not order.post_only and order.type is not OrderType.STOP and order.type is not OrderType.STOP_LIMIT:
            if order.side is BUY:
                px = ref if not self.slip else math.ceil(ref * (1 + self.slip))
                if order.price is None or order.price >= px or (order.price >= ref and (px := order.price)):
                    liquidity = (SELL, px)
            else:
                px = ref if not self.slip else max(1, math.floor(ref * (1 - self.slip)))
                if order.price is None or order.price <= px or (order.price <= ref and (px := order.price)):
                    liquidity = (BUY, px)
        if liquidity is None:
            self.dispatch(venue.place(order))
            return
        events = self.market_order(symbol, liquidity[0], liquidity[1], order.qty, GTC)
        maker_id = events[0].order.id if events and type(events[0]) is OrderAccepted else None
        self.dispatch(venue.place(order))
        if maker_id is not None and maker_id in venue.orders:
            venue.cancel(maker_id, self.now)

    def sweep(self, symbol: str, side: Side, limit: int, qty: int) -> None:
        """The market trades `qty` at `limit` or better against resting strategy orders (IOC)."""
        self.dispatch(self.market_order(symbol, side, limit, min(qty, BIG_QTY), IOC))

    def finish(self) -> None:
        """Stop the strategies; cancels still on their way reach the venue, anything else they sent
        after the data ended does not."""
        for runner in self.runners:
            runner.stop()
        for symbol, q in list(self.pending.items()):
            while q:
                action = q.popleft()
                if action[0] == "cancel":
                    self.deliver(symbol, action, None)
        while self.timed:
            _, symbol, action = self.timed.popleft()
            if action[0] == "cancel":
                self.deliver(symbol, action, None)
