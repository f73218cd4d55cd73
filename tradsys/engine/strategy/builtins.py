"""The built-in strategies: market_making, sma_cross, mean_reversion."""

from __future__ import annotations

import math
from collections import deque

import polars as pl

from tradsys.engine.strategy.bars import Bars
from tradsys.engine.strategy.base import BarData, FillData, OrderData, Strategy
from tradsys.engine.strategy.params import Duration, Param, Params


class SmaCross(Strategy):
    """Long-only moving-average crossover: buy `quantity` when the fast SMA of closes crosses above
    the slow one, sell it all when it crosses below.

    The averages are compared exactly, in integer ticks (fast_sum * slow == slow_sum * fast is a
    tie, not a cross), so the per-bar form (`on_bars`, used live and by event-driven backtests) and
    the vectorised form (`signals`, used by backtests on bars) take the same decisions.
    """

    name = "sma_cross"
    description = "Long-only SMA crossover: enter when fast crosses above slow, exit when it crosses below."
    params = {
        "fast": Param(int, 10, "fast SMA length in bars", min=1),
        "slow": Param(int, 30, "slow SMA length in bars", min=2),
        "quantity": Param(float, 1.0, "position when long, in base units", min=0),
        "symbol": Param(str, "", "symbol to trade (default: the first one given)"),
    }

    def on_start(self) -> None:
        p = self.p
        if p.fast >= p.slow:
            raise ValueError(f"fast ({p.fast}) must be shorter than slow ({p.slow})")
        (self.symbol,) = self.signal_symbols(p, self.ctx.symbols)
        self.fast, self.slow, self.quantity = p.fast, p.slow, p.quantity
        self.ctx.bars(self.symbol, keep=p.slow + 1)  # live: closes[i - slow] below is always kept
        self.fast_sum = 0
        self.slow_sum = 0
        self.above: bool | None = None

    def on_bars(self, bars: Bars) -> None:
        if bars.symbol != self.symbol:
            return
        closes, i = bars.close_ticks, bars.n - 1
        fast, slow = self.fast, self.slow
        close = closes[i]
        self.fast_sum += close - closes[i - fast] if i >= fast else close
        self.slow_sum += close - closes[i - slow] if i >= slow else close
        if i < slow - 1:
            return
        above = self.fast_sum * slow > self.slow_sum * fast
        was, self.above = self.above, above
        if was is None or was == above:
            return
        self.ctx.order_target(self.quantity if above else 0.0, self.symbol)

    @classmethod
    def signal_symbols(cls, params: Params, symbols: tuple[str, ...]) -> tuple[str, ...]:
        return (params.symbol or symbols[0],)

    @classmethod
    def signals(cls, bars: pl.DataFrame, params: Params) -> pl.Series | None:
        fast, slow = params.fast, params.slow
        if fast >= slow:
            raise ValueError(f"fast ({fast}) must be shorter than slow ({slow})")
        ticks = pl.col("close_ticks")
        above = (ticks.rolling_sum(fast) * slow) > (ticks.rolling_sum(slow) * fast)
        state = bars.select(above.alias("above")).get_column("above")
        prev = state.shift(1)
        changed = (state != prev) & prev.is_not_null()
        return _target(state, changed, float(params.quantity))


def _target(state: pl.Series, changed: pl.Series, qty: float) -> pl.Series:
    frame = pl.DataFrame({"state": state, "changed": changed})
    return frame.select(
        pl.when(pl.col("changed")).then(pl.when(pl.col("state")).then(pl.lit(qty)).otherwise(pl.lit(0.0)))
        .otherwise(pl.lit(None, pl.Float64)).alias("target")
    ).get_column("target")


class MeanReversion(Strategy):
    """Bollinger z-score mean reversion: z = (close - mean) / std over `window` closes. Go long
    `quantity` when z < -entry_z, short when z > entry_z (if allow_short), flat when |z| < exit_z."""

    name = "mean_reversion"
    description = "Bollinger z-score: long below -entry_z, short above entry_z, flat inside exit_z."
    params = {
        "window": Param(int, 20, "look-back in bars", min=2),
        "entry_z": Param(float, 2.0, "enter when |z| exceeds this", min=0),
        "exit_z": Param(float, 0.5, "exit when |z| falls below this", min=0),
        "quantity": Param(float, 1.0, "position size in base units", min=0),
        "allow_short": Param(bool, True, "take short positions too"),
        "symbol": Param(str, "", "symbol to trade (default: the first one given)"),
    }

    def on_start(self) -> None:
        if self.p.exit_z > self.p.entry_z:
            raise ValueError("exit_z must not exceed entry_z")
        self.symbol = self.p.symbol or self.ctx.symbols[0]
        self.closes: deque[float] = deque(maxlen=self.p.window)
        self.target = 0.0

    def on_bar(self, bar: BarData) -> None:
        if bar.symbol != self.symbol:
            return
        closes = self.closes
        closes.append(bar.close)
        n = len(closes)
        if n < self.p.window:
            return
        mean = sum(closes) / n
        var = sum((c - mean) ** 2 for c in closes) / (n - 1)
        if var <= 0:
            return
        z = (bar.close - mean) / math.sqrt(var)
        q = self.p.quantity
        if z < -self.p.entry_z:
            target = q
        elif z > self.p.entry_z:
            target = -q if self.p.allow_short else 0.0
        elif abs(z) < self.p.exit_z:
            target = 0.0
        else:
            return
        self.ctx.order_target(target, self.symbol)


RETRIES = 2
"""New quotes on one side the market maker sends per refresh after the venue refused one."""


class MarketMaking(Strategy):
    """Quotes a bid and an ask around the mid (the last trade when the book has no mid), skewed
    against inventory: at +max_position both quotes sit half a spread lower. A side whose fill would
    take the position past max_position is not quoted. Requotes every refresh_seconds, after each
    fill and when a quote ends, moving a quote when its target moved by requote_bps or more and
    restoring its size after a partial fill.

    A refusal is never repeated in a loop: a quote whose amend was refused is cancelled and
    replaced, and a side whose new quote was refused is retried at once (the book may have moved)
    but, refused again, waits for the next refresh. A quote with a request still unanswered is left
    alone until the answer arrives, and prices stop a tick short of the other side of the book, so
    post-only quotes do not cross it."""

    name = "market_making"
    description = "Two-sided quotes around mid, skewed against inventory, within max_position."
    params = {
        "symbol": Param(str, "", "symbol to quote (default: the first one given)"),
        "spread_bps": Param(float, 10.0, "full quoted spread in basis points of mid", min=0.01),
        "quantity": Param(float, 0.01, "size of each quote in base units", min=0),
        "max_position": Param(float, 0.1, "largest absolute position in base units", min=0),
        "refresh_seconds": Param(Duration, Duration(5.0), "requote interval", min=0.001),
        "requote_bps": Param(float, 1.0, "move a quote only when its target moved this much", min=0),
    }

    def on_start(self) -> None:
        p = self.p
        self.symbol = p.symbol or self.ctx.symbols[0]
        self.bid_id: str | None = None
        self.ask_id: str | None = None
        self.refused: dict[str, int] = {}
        """Per side, new quotes the venue refused since the last refresh."""
        self.quantity, self.limit = p.quantity, p.max_position
        self.lots = self.ctx.to_lots(self.symbol, p.quantity)
        self.half_spread = p.spread_bps / 20_000
        self.requote = p.requote_bps / 10_000
        self.ctx.set_timer("refresh", float(p.refresh_seconds))
        self.quote()

    def on_timer(self, name: str) -> None:
        self.refused.clear()
        self.quote()

    def on_fill(self, fill: FillData) -> None:
        self.quote()

    def on_order(self, order: OrderData) -> None:
        if order.id != self.bid_id and order.id != self.ask_id:
            return
        if order.is_open:
            if order.reason:  # an amend refused: the quote is not where we want it; replace it
                self.ctx.cancel(order.id)
            return
        if order.id == self.bid_id:
            self.bid_id = None
        else:
            self.ask_id = None
        if order.status == "rejected":
            self.refused[order.side] = self.refused.get(order.side, 0) + 1
        self.quote()

    def quote(self) -> None:
        ctx = self.ctx
        book = ctx.book(self.symbol)
        mid = book.mid
        if mid is None:
            return
        pos = ctx.position(self.symbol)
        limit, qty = self.limit, self.quantity
        inventory = 0.0 if limit <= 0 else max(-1.0, min(1.0, pos / limit))
        half = mid * self.half_spread
        centre = mid - inventory * half
        threshold = max(mid * self.requote, 1e-12)
        tick = float(ctx.instruments[self.symbol].tick_size)
        bid, ask = centre - half, centre + half
        if book.ask is not None:
            bid = min(bid, book.ask - tick)
        if book.bid is not None:
            ask = max(ask, book.bid + tick)
        self.bid_id = self._side("buy", self.bid_id, bid, pos + qty <= limit + 1e-12, threshold)
        self.ask_id = self._side("sell", self.ask_id, ask, pos - qty >= -limit - 1e-12, threshold)

    def _side(self, side: str, order_id: str | None, price: float, allowed: bool, threshold: float) -> str | None:
        ctx = self.ctx
        order = ctx.order(order_id)
        if order is None:
            if not allowed or self.refused.get(side, 0) >= RETRIES:
                return None
            return ctx.place(side, self.quantity, price, symbol=self.symbol, post_only=True)
        if not allowed:
            ctx.cancel(order.id)
        elif not order.in_flight:
            short = ctx.to_lots(self.symbol, order.open_qty) < self.lots
            if short or order.price is None or abs(order.price - price) >= threshold:
                ctx.amend(order.id, price=price, qty=self.quantity)
        return order.id


BUILTINS: dict[str, type[Strategy]] = {cls.name: cls for cls in (MarketMaking, SmaCross, MeanReversion)}
