"""The Strategy class and the market-data and order objects its callbacks receive.

Strategy code sees plain floats in instrument units (prices in the quote currency, quantities in
the base currency); the context rounds prices to the instrument's tick and quantities to its lot
when it turns them into orders. Timestamps are engine-clock nanoseconds: the data's time in a
backtest, the daemon's clock live. The same class runs unchanged in both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from tradsys.engine.strategy.params import Param, Params

if TYPE_CHECKING:
    import polars as pl

    from tradsys.engine.strategy.bars import Bars
    from tradsys.engine.strategy.context import Context


class BarData:
    """One finished bar. `ts` is its start, `end_ns` its close: callbacks run at `end_ns`."""

    __slots__ = ("ts", "end_ns", "symbol", "open", "high", "low", "close", "volume")

    def __init__(self, ts: int, end_ns: int, symbol: str, open: float, high: float, low: float, close: float,
                 volume: float | None) -> None:
        self.ts, self.end_ns, self.symbol = ts, end_ns, symbol
        self.open, self.high, self.low, self.close, self.volume = open, high, low, close, volume

    def __repr__(self) -> str:
        return f"Bar({self.symbol} {self.ts} o={self.open} h={self.high} l={self.low} c={self.close})"


class TradeData:
    """One trade on the market; `side` is the taker's ("buy"/"sell") or None when unknown."""

    __slots__ = ("ts", "symbol", "price", "qty", "side")

    def __init__(self, ts: int, symbol: str, price: float, qty: float | None, side: str | None) -> None:
        self.ts, self.symbol, self.price, self.qty, self.side = ts, symbol, price, qty, side

    def __repr__(self) -> str:
        return f"Trade({self.symbol} {self.ts} {self.side} {self.qty}@{self.price})"


class BookData:
    """Top of the book (None for an empty side) and the last trade price."""

    __slots__ = ("ts", "symbol", "bid", "ask", "last")

    def __init__(self, ts: int, symbol: str, bid: float | None, ask: float | None, last: float | None) -> None:
        self.ts, self.symbol, self.bid, self.ask, self.last = ts, symbol, bid, ask, last

    @property
    def mid(self) -> float | None:
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2
        return self.last

    def __repr__(self) -> str:
        return f"Book({self.symbol} {self.bid}/{self.ask} last={self.last})"


class FillData:
    """One fill of one of the strategy's orders; `position` is the strategy's position right after."""

    __slots__ = ("ts", "order_id", "symbol", "side", "price", "qty", "fee", "liquidity", "position")

    def __init__(self, ts: int, order_id: str, symbol: str, side: str, price: float, qty: float, fee: float,
                 liquidity: str, position: float) -> None:
        self.ts, self.order_id, self.symbol, self.side = ts, order_id, symbol, side
        self.price, self.qty, self.fee, self.liquidity, self.position = price, qty, fee, liquidity, position

    def __repr__(self) -> str:
        return f"Fill({self.order_id} {self.side} {self.qty}@{self.price} {self.liquidity})"


class OrderData:
    """What the strategy knows about one of its orders, as the venue last reported it: `price`, `qty` and
    `open_qty` change when the venue confirms (accepted, amended, filled), not when the strategy asks.
    `status`: pending (sent, not yet accepted), new, partially_filled, filled, cancelled, rejected,
    expired. `reason` says why it ended, or, while it is open, why the venue refused the last
    request on it. `in_flight` counts the requests on it (the new order itself, amends, cancels) the
    venue has not answered yet; `cancelling` is set once a cancel is sent, so a second one is not."""

    __slots__ = ("id", "symbol", "side", "type", "price", "qty", "open_qty", "filled_qty", "status", "reason",
                 "in_flight", "cancelling")

    def __init__(self, id: str, symbol: str, side: str, type: str, price: float | None, qty: float) -> None:
        self.id, self.symbol, self.side, self.type, self.price = id, symbol, side, type, price
        self.qty = self.open_qty = qty
        self.filled_qty = 0.0
        self.status = "pending"
        self.reason = ""
        self.in_flight = 1
        self.cancelling = False

    @property
    def is_open(self) -> bool:
        return self.status in ("pending", "new", "partially_filled")

    def __repr__(self) -> str:
        return f"Order({self.id} {self.side} {self.open_qty}/{self.qty}@{self.price} {self.status})"


class Strategy:
    """Subclass, declare `params`, override the callbacks you need. Every callback may use `self.ctx`.

    Callbacks: on_start, on_bar(bar), on_trade(trade), on_book(book), on_fill(fill),
    on_order(order), on_timer(name), on_signal(signal), on_stop. `on_signal` gets each trading signal
    a peer sends the daemon's peer for one of the strategy's symbols (a dict: symbol, side or value,
    time, sender, subject...), and in a backtest each recorded one (`--signals`) at its time;
    `self.ctx.publish_signal(...)` sends one. A callback that raises stops the strategy: its open
    orders are cancelled and the traceback logged; nothing else is affected.

    `on_bars(bars)` is the fast form of on_bar, called instead of it when defined: `bars` is the
    symbol's history as columns (`tradsys.engine.strategy.bars.Bars`), the bar just closed at
    index `bars.n - 1`. A backtest makes no object per bar for it.

    A strategy whose decisions are a function of bars alone may also define `signals`: the target
    position per bar, computed once over the whole frame with polars. Backtests on bars then skip
    the per-bar callbacks and only act where the target changes, with the same fill rules; live,
    `on_bar` is used. The two must agree (tests check it for the built-ins).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    bar_interval: ClassVar[str] = "1m"
    """Live only: the bar length on_bar gets, aggregated from the venue's trades."""

    def __init__(self, ctx: "Context", params: Params) -> None:
        self.ctx = ctx
        self.p = params

    def on_start(self) -> None: ...
    def on_bar(self, bar: BarData) -> None: ...
    def on_bars(self, bars: Bars) -> None: ...
    def on_trade(self, trade: TradeData) -> None: ...
    def on_book(self, book: BookData) -> None: ...
    def on_fill(self, fill: FillData) -> None: ...
    def on_order(self, order: OrderData) -> None: ...
    def on_timer(self, name: str) -> None: ...
    def on_signal(self, signal: dict[str, Any]) -> None: ...
    def on_stop(self) -> None: ...

    @classmethod
    def signals(cls, bars: "pl.DataFrame", params: Params) -> "pl.Series | None":
        """Optional vectorised form: a Float64 series of target positions (base units), one per row of
        `bars` (one symbol, sorted by ts), decided at each bar's close from that bar and earlier
        ones only; null = no decision. `bars` has ts, symbol, open, high, low, close, volume, end_ns
        and the prices as integer ticks (open_ticks ... close_ticks) for exact comparisons.
        Where a target is set, the backtester sends the market order(s) that reach it at the next
        bar's open (`ctx.order_target`), through the venue's risk checks."""
        return None

    @classmethod
    def signal_symbols(cls, params: Params, symbols: tuple[str, ...]) -> tuple[str, ...]:
        """The symbols `signals` decides for, out of those the strategy was given: the ones its
        per-bar form trades, so that both forms take the same decisions. Every one by default."""
        return symbols

    @classmethod
    def vectorised(cls) -> bool:
        return cls.signals.__func__ is not Strategy.signals.__func__  # type: ignore[attr-defined]

    @classmethod
    def overrides(cls, callback: str) -> bool:
        """Whether the class defines `callback`; one with on_bars counts as having on_bar too (hosts
        deliver bars to either through on_bar)."""
        if callback == "on_bar" and cls.overrides("on_bars"):
            return True
        return getattr(cls, callback) is not getattr(Strategy, callback)

    @classmethod
    def kind(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def summary(cls) -> str:
        return cls.description or (cls.__doc__ or "").strip().split("\n")[0]


def check_strategy_class(cls: Any) -> type[Strategy]:
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"{cls!r} is not a Strategy subclass")
    for name, spec in cls.params.items():
        if not isinstance(spec, Param):
            raise TypeError(f"{cls.__name__}.params[{name!r}] must be a Param")
    return cls
