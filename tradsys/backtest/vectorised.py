"""Vectorised bars: a strategy's `signals` set target positions over the whole frame at once.

The target decided at a bar's close is reached with market orders at the symbol's next bar open
(rule 2 of `tradsys.backtest.rules`), through the venue, so the risk checks and fills are those
of the event-driven run; only bars where the target is set cost an engine call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from tradsys.backtest.rules import MARKET_ACCOUNT
from tradsys.backtest.sim import BUY, GTC, IOC, LIMIT, SELL, ProgressFn, Simulation
from tradsys.engine import OrderFilled, OrderRejected, OrderType, new_order
from tradsys.engine.strategy import StrategyRunner
from tradsys.engine.strategy.context import target_legs

MARKET = OrderType.MARKET


@dataclass
class Marks:
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


def run_vectorised(sim: Simulation, frame: pl.DataFrame, symbols: tuple[str, ...], progress: ProgressFn | None) -> None:
    """Targets from `signals` per symbol (`symbols` are the frame's) for the run's one strategy."""
    runner = sim.runners[0]
    last: dict[str, float] = {}
    sim.last_fn = last.get
    runner.start()
    marks = target_marks(runner, frame, symbols)
    if marks is None:
        return
    if runner.wants["on_fill"] or runner.wants["on_order"]:
        _through_context(sim, runner, marks, last, progress, frame.height)
    else:
        _inline(sim, runner, marks)
    last.update(marks.last_close)
    sim.now = int(frame.get_column("end_ns").max() or 0)
    if progress is not None:
        progress(frame.height, frame.height)


def target_marks(runner: StrategyRunner, frame: pl.DataFrame, symbols: tuple[str, ...]) -> Marks | None:
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
        return Marks([], [], [], [], [], [], last_close)
    marks = pl.concat(parts)
    if len(parts) > 1:
        marks = marks.sort("end_ns", "row", maintain_order=True)
    return Marks(*(marks.get_column(c).to_list() for c in MARK_COLUMNS), last_close=last_close)


def _through_context(sim: Simulation, runner: StrategyRunner, marks: Marks, last: dict[str, float],
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


def _inline(sim: Simulation, runner: StrategyRunner, marks: Marks) -> None:
    """The vectorised loop without per-order callbacks: the same orders, fills and risk checks as
    `ctx.order_target` and `Simulation.deliver`, inlined (this is the hot path of `sma_cross`)."""
    venue = sim.venue
    place, cancel, orders = venue.place, venue.cancel, venue.orders
    ctx = runner.ctx
    account, prefix, owner = ctx.account, ctx._prefix, runner.id
    fills, rejections, lot_of = sim.fills, sim.rejections, sim.lots
    slip = sim.slip
    pos = dict.fromkeys(ctx.symbols, 0)
    n = 0
    mid = sim.mid
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
    sim.mid = mid
    sim.orders_sent += n
    for symbol, lots in pos.items():  # the context's view, for anything that reads it afterwards
        ctx.ledgers[symbol].lots = lots
