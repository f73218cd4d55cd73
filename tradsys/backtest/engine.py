"""BacktestEngine: strategies on historical bars or trades, through a real `Venue`.

    engine = BacktestEngine(initial_capital=100_000, taker_fee_bps=5)
    engine.add_strategy("sma_cross", {"fast": 10, "slow": 30})
    engine.load_data("bars.parquet")
    result = engine.run()
    result.metrics["sharpe"], result.fills  # polars DataFrame

The fill rules are in `tradsys.backtest.rules`. The loops here are the hot path: they touch the
venue only when something can happen (an order arrives, a bar or trade crosses a resting order, a
timer is due) and skip everything else.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from tradsys.backtest.rules import MARKET_ACCOUNT
from tradsys.data import MarketData, load_market_data
from tradsys.engine import (
    DEFAULT_INSTRUMENTS, Instrument, Order, OrderAccepted, OrderFilled, OrderRejected, OrderType, Side, TimeInForce, Venue,
    VenueConfig, new_order,
)
from tradsys.engine.strategy import (
    BarData,
    BookData,
    Context,
    Params,
    Strategy,
    StrategyRunner,
    TradeData,
    load_strategy,
    resolve_params,
)
from tradsys.engine.strategy.context import target_legs

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
GTC, IOC = TimeInForce.GTC, TimeInForce.IOC
SIDES = {"buy": BUY, "sell": SELL}
TYPES = {"limit": LIMIT, "market": MARKET, "stop": OrderType.STOP, "stop_limit": OrderType.STOP_LIMIT}
BIG_QTY = 10**9
NEVER = 2**62
DEFAULT_BACKTEST_LIMITS: dict[str, Any] = {"price_band_pct": None, "breaker_move_pct": None}

ProgressFn = Callable[[int, int], None]


@dataclass
class BacktestConfig:
    initial_capital: float = 100_000.0
    currency: str = "USD"
    maker_fee_bps: float = 1.0
    taker_fee_bps: float = 5.0
    slippage_bps: float = 0.0
    latency_ms: float = 0.0
    queue: str = "through"
    """Trades only: "through" (fills need a trade through the price) or "touch"."""
    limits: dict[str, Any] = field(default_factory=dict)
    """Risk limits for the strategies' accounts, on top of DEFAULT_BACKTEST_LIMITS (venue-wide)."""
    vectorised: bool = True
    """Use a strategy's `signals` on bars when it has one."""
    tick_size: str = "0.01"
    lot_size: str = "0.001"
    """For symbols that are not venue instruments already."""


@dataclass
class _Entry:
    cls: type[Strategy]
    params: Params
    symbols: tuple[str, ...] | None
    name: str


class BacktestContext(Context):
    """Orders become pending actions that the loop delivers under the fill rules."""

    def __init__(self, sim: "_Sim", symbols: tuple[str, ...], prefix: str, account: str) -> None:
        super().__init__(sim.venue.instruments, symbols, prefix, account)
        self.sim = sim

    @property
    def now(self) -> int:
        return self.sim.now

    def _send_new(self, order_id: str, symbol: str, side: str, type: str, price: int | None, qty: int, tif: str,
                  post_only: bool, reduce_only: bool) -> None:
        order = new_order(order_id, self.account, symbol, SIDES[side], TYPES[type], qty, None if type == "market" else price,
                          price if type in ("stop", "stop_limit") else None, TimeInForce(tif.upper()), post_only,
                          reduce_only, None, None, 0)
        self.sim.queue(symbol, ("new", order))

    def _send_cancel(self, order_id: str) -> None:
        order = self.orders.get(order_id)
        if order is not None:
            self.sim.queue(order.symbol, ("cancel", order_id, self.account))

    def _send_amend(self, order_id: str, price: int | None, qty: int | None) -> None:
        order = self.orders.get(order_id)
        if order is not None:
            self.sim.queue(order.symbol, ("amend", order_id, self.account, price, qty))

    def book(self, symbol: str | None = None) -> BookData:
        symbol = symbol or self.symbols[0]
        last = self.sim.last_price(symbol)
        return BookData(self.sim.now, symbol, None, None, last)


class _Sim:
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
        self._mid = 0
        self._last: dict[str, float | None] = {}
        self.last_fn: Callable[[str], float | None] = self._last.get
        self.ticks = {s: float(i.tick_size) for s, i in venue.instruments.items()}
        self.lots = {s: float(i.lot_size) for s, i in venue.instruments.items()}
        self.owners: dict[str, str] = {}
        """account -> runner id, for the fills table."""

    def last_price(self, symbol: str) -> float | None:
        return self.last_fn(symbol)

    def queue(self, symbol: str, action: tuple) -> None:
        if self.kind == "bars":
            q = self.pending.get(symbol)
            if q is None:
                q = self.pending[symbol] = deque()
            q.append(action)
        else:
            self.timed.append((self.now + self.latency_ns, symbol, action))

    # -- the venue ----------------------------------------------------------------------------

    def dispatch(self, events: list) -> None:
        if not events:
            return
        fills = self.fills
        for event in events:
            if type(event) is OrderFilled:
                for order, fee, liq in ((event.taker, event.taker_fee, "taker"), (event.maker, event.maker_fee, "maker")):
                    if order.account != MARKET_ACCOUNT:
                        fills.append((event.ts, self.owners.get(order.account, order.account), order.id, event.symbol,
                                      order.side.value, event.price, event.qty, fee, liq))
            elif type(event) is OrderRejected and event.account != MARKET_ACCOUNT:  # type: ignore[union-attr]
                self.rejections[event.reason] = self.rejections.get(event.reason, 0) + 1  # type: ignore[union-attr]
        for runner in self.runners:
            runner.events(events)

    def market_order(self, symbol: str, side: Side, price: int, qty: int, tif: TimeInForce) -> list:
        self._mid += 1
        order = new_order(f"m{self._mid}", MARKET_ACCOUNT, symbol, side, LIMIT, qty, price, None, tif, False, False, None, None,
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


class BacktestEngine:
    """Register strategies, load data, run. See the module doc and `tradsys.backtest.rules`."""

    def __init__(self, initial_capital: float = 100_000.0, **options: Any) -> None:
        self.config = BacktestConfig(initial_capital=initial_capital, **options)
        if self.config.queue not in ("through", "touch"):
            raise ValueError(f"queue must be 'through' or 'touch', got {self.config.queue!r}")
        self.entries: list[_Entry] = []
        self.data: MarketData | None = None
        self.frame: pl.DataFrame | None = None
        """The data, read once by `load_data`: every run (a parameter sweep makes many) starts from it."""
        self.venue: Venue | None = None

    def add_strategy(self, strategy: str | type[Strategy], params: Mapping[str, Any] | None = None,
                     symbols: list[str] | tuple[str, ...] | None = None, name: str | None = None) -> "BacktestEngine":
        """A strategy class or its name (`sma_cross`, `file.py:Class`); params are validated here."""
        cls = load_strategy(strategy) if isinstance(strategy, str) else strategy
        resolved = Params(resolve_params(cls.params, params))
        self.entries.append(_Entry(cls, resolved, tuple(symbols) if symbols else None,
                                   name or f"{cls.kind()}-{len(self.entries) + 1}"))
        return self

    def load_data(self, source: str | Path | pl.DataFrame | pl.LazyFrame | MarketData,
                  symbol: str | None = None) -> MarketData:
        self.data = source if isinstance(source, MarketData) else load_market_data(source, symbol)
        self.frame = self.data.collect()
        return self.data

    def run(self, initial_capital: float | None = None, progress: ProgressFn | None = None) -> Any:
        from tradsys.backtest.result import build_result

        if self.data is None or self.frame is None:
            raise ValueError("no data: call load_data first")
        if not self.entries:
            raise ValueError("no strategy: call add_strategy first")
        if initial_capital is not None:
            self.config.initial_capital = initial_capital
        data = self.data
        instruments = self._instruments(data.symbols)
        sim = _Sim(self.config, instruments, data.kind)
        started = time.perf_counter()
        frame = _with_ticks(self.frame, data.kind, data.symbols, sim.venue.instruments)
        for i, entry in enumerate(self.entries):
            account = f"bt-{i + 1}"
            ctx = BacktestContext(sim, entry.symbols or data.symbols, f"s{i + 1}-", account)
            for key, value in self.config.limits.items():
                sim.venue.set_limit(key, value, account=account)
            runner = StrategyRunner(entry.name, entry.cls, entry.params, ctx)
            sim.runners.append(runner)
            sim.owners[account] = entry.name
        mode = "event"
        if data.kind == "bars":
            vector = self.config.vectorised and len(sim.runners) == 1 and sim.runners[0].strategy.vectorised()
            if vector:
                mode = "vectorised"
                _run_vectorised(sim, frame, data.symbols, progress)
            else:
                _run_bars(sim, frame, progress)
        else:
            _run_trades(sim, frame, progress)
        for runner in sim.runners:
            runner.stop()
        for symbol, q in list(sim.pending.items()):
            while q:
                action = q.popleft()
                if action[0] == "cancel":
                    sim.deliver(symbol, action, None)
        while sim.timed:
            _, symbol, action = sim.timed.popleft()
            if action[0] == "cancel":
                sim.deliver(symbol, action, None)
        elapsed = time.perf_counter() - started
        self.venue = sim.venue
        """The venue of the last run, for inspection (accounts, open orders)."""
        return build_result(self, sim, frame, mode, elapsed)

    def _instruments(self, symbols: tuple[str, ...]) -> list[Instrument]:
        known = {i.symbol: i for i in DEFAULT_INSTRUMENTS}
        for symbol in symbols:
            if symbol not in known:
                base, _, quote = symbol.partition("-")
                known[symbol] = Instrument(symbol, base, quote or self.config.currency,
                                           Decimal(self.config.tick_size), Decimal(self.config.lot_size),
                                           min_qty=1, max_qty=10**12)
        return list(known.values())


def _with_ticks(frame: pl.DataFrame, kind: str, symbols: tuple[str, ...],
                instruments: dict[str, Instrument]) -> pl.DataFrame:
    """Prices as integer ticks and quantities as lots of each row's instrument, beside the floats;
    `symbols` are the frame's (known from loading, so no pass over the column here)."""
    if len(symbols) == 1:  # the common case: plain literals, no per-row lookups
        tick: pl.Expr = pl.lit(float(instruments[symbols[0]].tick_size))
        lot: pl.Expr = pl.lit(float(instruments[symbols[0]].lot_size))
    else:
        tick = pl.col("symbol").replace_strict({s: float(i.tick_size) for s, i in instruments.items()},
                                               return_dtype=pl.Float64)
        lot = pl.col("symbol").replace_strict({s: float(i.lot_size) for s, i in instruments.items()},
                                              return_dtype=pl.Float64)
    cols = ("open", "high", "low", "close") if kind == "bars" else ("price",)
    exprs = [(pl.col(c) / tick).round(0).cast(pl.Int64).alias(f"{c}_ticks") for c in cols]
    if kind == "trades":
        exprs.append((pl.col("qty") / lot).round(0).cast(pl.Int64).alias("qty_lots"))
    else:  # a bar closes when the next one starts: the median gap between bars of its symbol
        gap = pl.col("ts").diff()
        interval = gap.filter(gap > 0).median()
        if len(symbols) > 1:
            interval = interval.over("symbol")
        exprs.append((pl.col("ts") + interval.fill_null(60_000_000_000).cast(pl.Int64)).alias("end_ns"))
    return frame.with_columns(exprs)  # one pass: every extra frame of a million rows costs page faults


# -- bars, one event per bar ------------------------------------------------------------------------


def _run_bars(sim: _Sim, frame: pl.DataFrame, progress: ProgressFn | None) -> None:
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
    cols = [frame.get_column(c).to_list() for c in (
        "ts", "end_ns", "symbol", "open", "high", "low", "close", "volume",
        "open_ticks", "high_ticks", "low_ticks", "close_ticks")]
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


def _through_bid(sim: _Sim, sym: str, book: Any, low: int) -> None:
    best = book.best_bid()
    if best is not None and best > low:
        sim.sweep(sym, SELL, low + 1, BIG_QTY)


def _through_ask(sim: _Sim, sym: str, book: Any, high: int) -> None:
    best = book.best_ask()
    if best is not None and best < high:
        sim.sweep(sym, BUY, high - 1, BIG_QTY)


# -- bars, vectorised --------------------------------------------------------------------------------


@dataclass
class _Marks:
    """The bars where a strategy set a target, in the order the engine acts on them (by bar close,
    symbols interleaved), as plain lists: the loops below read each once."""

    symbol: list[str]
    target: list[float]
    end: list[int]
    close: list[float]
    next_ts: list[int | None]
    """Start of the symbol's next bar, when the orders arrive (None after the symbol's last bar)."""
    next_open: list[int | None]
    """Open of that bar in ticks: the market's price for those orders."""
    last_close: dict[str, float]


MARK_COLUMNS = ("symbol", "target", "end_ns", "close", "next_ts", "next_open")


def _run_vectorised(sim: _Sim, frame: pl.DataFrame, symbols: tuple[str, ...], progress: ProgressFn | None) -> None:
    """Targets from `signals` per symbol (`symbols` are the frame's); the engine is called only where
    a target is set."""
    runner = sim.runners[0]
    last: dict[str, float] = {}
    sim.last_fn = last.get
    runner.start()
    marks = _marks(runner, frame, symbols)
    if marks is None:
        return
    if runner.wants["on_fill"] or runner.wants["on_order"]:
        _vector_callbacks(sim, runner, marks, last, progress, frame.height)
    else:
        _vector_fast(sim, runner, marks)
    last.update(marks.last_close)
    sim.now = int(frame.get_column("end_ns").max() or 0)
    if progress is not None:
        progress(frame.height, frame.height)


def _marks(runner: StrategyRunner, frame: pl.DataFrame, symbols: tuple[str, ...]) -> _Marks | None:
    """Where `signals` set a target, filtered in polars so that Python sees only those bars; None
    (and the runner failed) when `signals` raises or returns the wrong length."""
    cls, params = type(runner.strategy), runner.strategy.p
    parts = []
    last_close: dict[str, float] = {}
    for symbol in cls.signal_symbols(params, runner.ctx.symbols):
        part = frame if symbols == (symbol,) else frame.filter(pl.col("symbol") == symbol)
        if part.height == 0:
            continue
        try:
            target = cls.signals(part, params)
        except Exception as exc:
            runner.fail("signals", exc)
            return None
        if target is None or len(target) != part.height:
            runner.fail("signals", ValueError(f"signals must return one value per bar ({part.height})"))
            return None
        last_close[symbol] = part.get_column("close")[-1]
        parts.append(part.select(
            "symbol", pl.Series("target", target, dtype=pl.Float64), "end_ns", "close",
            pl.col("ts").shift(-1).alias("next_ts"), pl.col("open_ticks").shift(-1).alias("next_open"),
        ).with_row_index("row").filter(pl.col("target").is_not_null()))
    if not parts:
        return _Marks([], [], [], [], [], [], last_close)
    marks = pl.concat(parts)
    if len(parts) > 1:
        marks = marks.sort("end_ns", "row", maintain_order=True)
    return _Marks(*(marks.get_column(c).to_list() for c in MARK_COLUMNS), last_close=last_close)


def _vector_callbacks(sim: _Sim, runner: StrategyRunner, marks: _Marks, last: dict[str, float],
                      progress: ProgressFn | None, total: int) -> None:
    """Targets through `ctx.order_target`, for strategies that want their order and fill callbacks."""
    ctx = runner.ctx
    count = len(marks.target)
    for k, (symbol, target, end, close, next_ts, next_open) in enumerate(
            zip(marks.symbol, marks.target, marks.end, marks.close, marks.next_ts, marks.next_open)):
        if runner.state != "running":
            break
        sim.now = end
        last[symbol] = close
        if next_ts is None:
            continue
        try:
            if not ctx.order_target(target, symbol):
                continue
        except Exception as exc:
            runner.fail("signals", exc)
            break
        sim.now = next_ts
        q = sim.pending[symbol]
        while q:
            sim.deliver(symbol, q.popleft(), next_open)
        if progress is not None and k % 1000 == 0:
            progress(total * k // count, total)


def _vector_fast(sim: _Sim, runner: StrategyRunner, marks: _Marks) -> None:
    """The vectorised loop without per-order callbacks: the same orders, fills and risk checks as
    `ctx.order_target` and `_Sim.deliver`, inlined (this is the hot path of `sma_cross`)."""
    venue = sim.venue
    place, cancel, orders = venue.place, venue.cancel, venue.orders
    ctx = runner.ctx
    account, prefix, owner = ctx.account, ctx._prefix, runner.id
    fills, rejections, lot_of = sim.fills, sim.rejections, sim.lots
    slip = sim.slip
    pos = dict.fromkeys(ctx.symbols, 0)
    n = 0
    mid = sim._mid
    for symbol, target, next_ts, next_open in zip(marks.symbol, marks.target, marks.next_ts, marks.next_open):
        if next_ts is None:
            continue
        cur = pos[symbol]
        goal = round(target / lot_of[symbol])
        if goal == cur:
            continue
        sim.now = next_ts
        for buy, lots, reduce_only in target_legs(cur, goal):
            n += 1
            mid += 1
            if buy:
                side, side_name = BUY, "buy"  # not side.value: an enum property is a Python call
                px = next_open if not slip else math.ceil(next_open * (1 + slip))
            else:
                side, side_name = SELL, "sell"
                px = next_open if not slip else max(1, math.floor(next_open * (1 - slip)))
            maker = new_order(f"m{mid}", MARKET_ACCOUNT, symbol, SELL if buy else BUY, LIMIT, lots, px, None, GTC, False,
                              False, None, None, next_ts)
            place(maker)
            order = new_order(f"{prefix}v{n}", account, symbol, side, MARKET, lots, None, None, IOC, False, reduce_only,
                              None, None, next_ts)
            for event in place(order):
                kind = type(event)
                if kind is OrderFilled:
                    pos[symbol] += event.qty if buy else -event.qty
                    fills.append((event.ts, owner, order.id, symbol, side_name, event.price, event.qty,
                                  event.taker_fee, "taker"))
                elif kind is OrderRejected:
                    rejections[event.reason] = rejections.get(event.reason, 0) + 1
            if maker.id in orders:
                cancel(maker.id, next_ts)
    sim._mid = mid
    sim.orders_sent += n
    for symbol, lots in pos.items():  # the context's view, for anything that reads it afterwards
        ctx.ledgers[symbol].lots = lots


# -- trades ---------------------------------------------------------------------------------------


def _run_trades(sim: _Sim, frame: pl.DataFrame, progress: ProgressFn | None) -> None:
    venue = sim.venue
    runners = sim.runners
    config = sim.config
    touch = config.queue == "touch"
    symbols = list(dict.fromkeys(frame.get_column("symbol").to_list())) if frame.height else []
    index = {s: k for k, s in enumerate(symbols)}
    ts_l = frame.get_column("ts").to_list()
    pt_l = frame.get_column("price_ticks").to_list()
    qty_l = frame.get_column("qty_lots").to_list()
    trade_runners = [r for r in runners if r.wants["on_trade"]]
    # floats and sides only when something reads them: each list of a million costs a tenth of a second
    px_l = frame.get_column("price").to_list() if trade_runners else None
    side_l = frame.get_column("side").to_list() if trade_runners or touch else None
    tick_of = [sim.ticks[s] for s in symbols]
    if len(symbols) == 1:
        sym_l = None
    else:
        sym_l = frame.get_column("symbol").replace_strict(index, return_dtype=pl.Int32).to_list()
    n = len(ts_l)
    pos = [0]

    def last_price(symbol: str) -> float | None:
        ticks = last_ticks(symbol)
        if ticks is None:
            return None
        return px_l[pos[0] - 1] if px_l is not None and sym_l is None else ticks * tick_of[index[symbol]]

    def last_ticks(symbol: str) -> int | None:
        k = index.get(symbol)
        j = pos[0] - 1
        if k is None:
            return None
        if sym_l is not None:
            while j >= 0 and sym_l[j] != k:
                j -= 1
        return pt_l[j] if j >= 0 else None

    sim.last_fn = last_price
    timed = sim.timed
    books = [venue.books[s] for s in symbols]
    lo_thr = [-1] * len(symbols)
    hi_thr = [NEVER] * len(symbols)

    def thresholds() -> None:
        for k, book in enumerate(books):
            bid, ask = book.best_bid(), book.best_ask()
            lo_thr[k] = -1 if bid is None else (bid + 1 if touch else bid)
            hi_thr[k] = NEVER if ask is None else (ask - 1 if touch else ask)

    def next_event() -> int:
        t = timed[0][0] if timed else NEVER
        for runner in runners:
            nt = runner.ctx.next_timer_ns
            if nt is not None and nt < t and runner.state == "running":
                t = nt
        return t

    sim.now = ts_l[0] if n else 0
    for runner in runners:
        runner.start()
    thresholds()
    t_evt = next_event()
    i = 0
    step = max(1, n // 200)
    next_progress = 0
    lo0, hi0 = lo_thr, hi_thr
    while i < n:
        if trade_runners:
            # every trade goes to on_trade; crossings as below
            t = ts_l[i]
            if t >= t_evt:
                t_evt = _event(sim, t_evt, last_ticks, pos, i)
                thresholds()
                continue
            k = 0 if sym_l is None else sym_l[i]
            p = pt_l[i]
            sim.now = t
            pos[0] = i + 1
            if p < lo0[k] or p > hi0[k]:
                _cross(sim, symbols[k], p, qty_l[i], side_l[i], lo0[k], touch)  # type: ignore[index]
                thresholds()
            trade = TradeData(t, symbols[k], px_l[i], None if qty_l[i] is None else qty_l[i] * sim.lots[symbols[k]],  # type: ignore[index]
                              side_l[i])  # type: ignore[index]
            for runner in trade_runners:
                if runner.state == "running":
                    runner.call("on_trade", trade)
            i += 1
            if timed or any(r.ctx.next_timer_ns is not None for r in runners):
                t_evt = next_event()
        else:
            j = i
            if sym_l is None:
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
                    k = sym_l[j]
                    if p < lo0[k] or p > hi0[k]:
                        break
                    j += 1
            i = j
            pos[0] = i
            if i >= n:
                break
            if ts_l[i] >= t_evt:
                t_evt = _event(sim, t_evt, last_ticks, pos, i)
            else:
                k = 0 if sym_l is None else sym_l[i]
                sim.now = ts_l[i]
                pos[0] = i + 1
                _cross(sim, symbols[k], pt_l[i], qty_l[i], None if side_l is None else side_l[i], lo0[k], touch)
                i += 1
                t_evt = next_event()
            thresholds()
        if progress is not None and i >= next_progress:
            progress(i, n)
            next_progress = i + step
    pos[0] = n
    if progress is not None:
        progress(n, n)


def _event(sim: _Sim, t_evt: int, last_ticks: Callable[[str], int | None], pos: list[int], i: int) -> int:
    """Deliver actions that arrive at t_evt and fire due timers; returns the next event time."""
    sim.now = t_evt
    pos[0] = i
    sim.venue.advance(t_evt)
    timed = sim.timed
    while True:
        while timed and timed[0][0] <= t_evt:
            _, symbol, action = timed.popleft()
            sim.deliver(symbol, action, last_ticks(symbol))
        for runner in sim.runners:
            if runner.state == "running":
                runner.timers(t_evt)
        t = timed[0][0] if timed else NEVER
        for runner in sim.runners:
            nt = runner.ctx.next_timer_ns
            if nt is not None and nt < t and runner.state == "running":
                t = nt
        if t > t_evt:  # else a callback asked for something at this very instant (zero latency)
            return t


def _cross(sim: _Sim, symbol: str, price: int, qty: int | None, side: str | None, lo: int, touch: bool) -> None:
    """A trade at `price` goes through (or, with touch, reaches) resting strategy orders."""
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


