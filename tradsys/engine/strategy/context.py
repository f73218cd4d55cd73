"""The strategy's handle on the world: place, cancel and amend orders, read position, PnL and the
book, log, and set timers.

`Context` keeps the strategy's own view (its orders, its position and cash from its own fills) and
leaves three things to the host that runs it: how an order command reaches the venue (directly in a
backtest, as a journaled command live), what the book looks like, and what time it is. Orders are
asynchronous in both: `place` returns the order id at once and the outcome arrives as `on_order`
and `on_fill` callbacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradsys.engine.instrument import CASH_SCALE, Instrument
from tradsys.engine.strategy.bars import KEEP, Bars
from tradsys.engine.strategy.base import BarData, BookData, FillData, OrderData

BUY, SELL = "buy", "sell"
GONE = ("order_closed", "unknown_order")
"""Refusal reasons meaning the venue has no open order by that id."""


class StrategyError(Exception):
    """A strategy used the context wrongly (unknown symbol, bad quantity...)."""


@dataclass(slots=True)
class Timer:
    name: str
    next_ns: int
    interval_ns: int
    repeat: bool


class Timers:
    """A strategy's named timers in engine time: the next one due (`next_ns`, None without any),
    which a host compares with its clock at every step before asking which are `due`."""

    __slots__ = ("by_name", "next_ns")

    def __init__(self) -> None:
        self.by_name: dict[str, Timer] = {}
        self.next_ns: int | None = None

    def set(self, timer: Timer) -> None:
        self.by_name[timer.name] = timer
        self._changed()

    def cancel(self, name: str) -> None:
        self.by_name.pop(name, None)
        self._changed()

    def due(self, now: int) -> list[str]:
        """Names of the timers due at `now`, each re-armed or removed."""
        due = []
        for timer in list(self.by_name.values()):
            if timer.next_ns <= now:
                due.append(timer.name)
                if timer.repeat:
                    timer.next_ns += max(1, (now - timer.next_ns) // timer.interval_ns + 1) * timer.interval_ns
                else:
                    del self.by_name[timer.name]
        self._changed()
        return due

    def _changed(self) -> None:
        self.next_ns = min((t.next_ns for t in self.by_name.values()), default=None)


class SymbolLedger:
    """The strategy's own position and cash in one symbol, from its own fills."""

    __slots__ = ("lots", "cash", "fees", "tick", "lot")

    def __init__(self, inst: Instrument) -> None:
        self.lots = 0
        self.cash = 0.0
        """Quote currency paid (-) and received (+), fees included."""
        self.fees = 0.0
        self.tick = float(inst.tick_size)
        self.lot = float(inst.lot_size)


class Context:
    def __init__(self, instruments: dict[str, Instrument], symbols: tuple[str, ...], id_prefix: str,
                 account: str, logger: logging.Logger | None = None) -> None:
        unknown = [s for s in symbols if s not in instruments]
        if unknown:
            raise StrategyError(f"unknown symbol(s) {', '.join(unknown)}; known: {', '.join(instruments)}")
        self.instruments = instruments
        self.symbols = symbols
        self.account = account
        self.orders: dict[str, OrderData] = {}
        """Every order this strategy made that is still open (or pending); closed ones leave."""
        self.ledgers = {s: SymbolLedger(instruments[s]) for s in symbols}
        self.timers = Timers()
        self.logger = logger or logging.getLogger("tradsys.strategy")
        self.messages: list[tuple[int, str]] = []
        """What the strategy logged, (ts, text), for backtest results; live it also goes to the daemon log."""
        self.published: list[dict[str, Any]] = []
        """Signals published (`publish_signal`), for backtest results; live they also go to the daemon's peer."""
        self.stopped = False
        self._prefix = id_prefix
        self._n = 0
        self._ticks = {s: (float(instruments[s].tick_size), float(instruments[s].lot_size)) for s in instruments}
        self._bars: dict[str, Bars] = {}
        self.warm: dict[str, list[BarData]] = {}
        """Live: bars that closed before the daemon restarted, per symbol, which open that symbol's
        history when it is first asked for: a restarted strategy reads its recent past at once."""

    # -- to be provided by the host -----------------------------------------------------------

    @property
    def now(self) -> int:
        raise NotImplementedError

    def _send_new(self, order_id: str, symbol: str, side: str, type: str, price: int | None, qty: int, tif: str,
                  post_only: bool, reduce_only: bool) -> None:
        raise NotImplementedError

    def _send_cancel(self, order_id: str) -> None:
        raise NotImplementedError

    def _send_amend(self, order_id: str, price: int | None, qty: int | None) -> None:
        raise NotImplementedError

    def book(self, symbol: str | None = None) -> BookData:
        """Top of the book and last trade of `symbol` (default: the first symbol)."""
        raise NotImplementedError

    # -- bars ---------------------------------------------------------------------------------------

    def bars(self, symbol: str | None = None, keep: int = KEEP) -> Bars:
        """The bars of `symbol` (default: the first symbol) closed so far, as columns: what `on_bars`
        gets. Live at least `keep` recent ones are kept; a backtest keeps them all."""
        symbol = symbol or self.symbols[0]
        bars = self._bars.get(symbol)
        if bars is None:
            if symbol not in self.instruments:
                raise StrategyError(f"unknown symbol {symbol!r}")
            bars = self._bars[symbol] = Bars(symbol, keep=keep)
            for bar in self.warm.pop(symbol, ()):
                bars.append(bar, self.to_ticks)
        bars.keep = max(bars.keep, keep)
        return bars

    # -- orders ---------------------------------------------------------------------------------

    def place(self, side: str, qty: float | Decimal | str, price: float | Decimal | str | None = None,
              symbol: str | None = None, type: str | None = None, tif: str = "GTC", post_only: bool = False,
              reduce_only: bool = False) -> str:
        """Send an order; returns its id. Without a price it is a market order. Prices round to the
        nearest tick, quantities to the nearest lot (a quantity that rounds to 0 lots raises)."""
        if self.stopped:
            raise StrategyError("the strategy is stopped")
        symbol = symbol or self.symbols[0]
        if side not in (BUY, SELL):
            raise StrategyError(f"side must be 'buy' or 'sell', got {side!r}")
        lots = self.to_lots(symbol, qty)
        if lots <= 0:
            raise StrategyError(f"qty {qty} is less than one lot of {symbol}")
        ticks = None if price is None else self.to_ticks(symbol, price)
        otype = type or ("market" if price is None else "limit")
        self._n += 1
        order_id = f"{self._prefix}{self._n}"
        tick, lot = self._ticks[symbol]
        self.orders[order_id] = OrderData(order_id, symbol, side, otype, None if ticks is None else ticks * tick,
                                          lots * lot)
        self._send_new(order_id, symbol, side, otype, ticks, lots, tif, post_only, reduce_only)
        return order_id

    def buy(self, qty: float | Decimal | str, price: float | Decimal | str | None = None, **kw: Any) -> str:
        return self.place(BUY, qty, price, **kw)

    def sell(self, qty: float | Decimal | str, price: float | Decimal | str | None = None, **kw: Any) -> str:
        return self.place(SELL, qty, price, **kw)

    def order_target(self, target: float, symbol: str | None = None) -> list[str]:
        """Market orders that take the position to `target` (base units): a reduction is sent
        reduce-only (it needs no cash held), a reversal as a reduce-only close plus a new order."""
        symbol = symbol or self.symbols[0]
        ledger = self.ledgers[symbol]
        current = ledger.lots
        goal = self.to_lots(symbol, target)
        lot = ledger.lot
        return [self.place(BUY if buy else SELL, lots * lot, symbol=symbol, reduce_only=reduce_only)
                for buy, lots, reduce_only in target_legs(current, goal)]

    def cancel(self, order_id: str) -> None:
        """Ask the venue to cancel; asking again before it answers sends nothing more."""
        order = self.orders.get(order_id)
        if order is not None and not order.cancelling:
            order.cancelling = True
            order.in_flight += 1
            self._send_cancel(order_id)

    def cancel_all(self, symbol: str | None = None) -> None:
        for order in list(self.orders.values()):
            if symbol is None or order.symbol == symbol:
                self.cancel(order.id)

    def amend(self, order_id: str, price: float | Decimal | str | None = None,
              qty: float | Decimal | str | None = None) -> None:
        """New price and/or new open quantity; a lower quantity keeps time priority. The order's
        view changes when the venue confirms (on_order); until it answers, `in_flight` counts it."""
        order = self.orders.get(order_id)
        if order is None:
            return
        ticks = None if price is None else self.to_ticks(order.symbol, price)
        lots = None if qty is None else self.to_lots(order.symbol, qty)
        if lots is not None and lots <= 0:
            raise StrategyError(f"qty {qty} is less than one lot")
        order.in_flight += 1
        self._send_amend(order_id, ticks, lots)

    def order(self, order_id: str | None) -> OrderData | None:
        """An open (or pending) order of this strategy, or None once it has ended."""
        return None if order_id is None else self.orders.get(order_id)

    def open_orders(self, symbol: str | None = None) -> list[OrderData]:
        return [o for o in self.orders.values() if symbol is None or o.symbol == symbol]

    # -- position and PnL -------------------------------------------------------------------------

    def position(self, symbol: str | None = None) -> float:
        ledger = self.ledgers[symbol or self.symbols[0]]
        return ledger.lots * ledger.lot

    def pnl(self, symbol: str | None = None) -> float:
        """Realized + unrealized PnL net of fees, in the quote currency, marked at the last trade (or mid)."""
        total = 0.0
        for sym in (symbol,) if symbol else self.symbols:
            ledger = self.ledgers[sym]
            value = 0.0
            if ledger.lots:
                book = self.book(sym)
                mark = book.last if book.last is not None else book.mid
                value = ledger.lots * ledger.lot * (mark or 0.0)
            total += ledger.cash + value
        return total

    def fees(self) -> float:
        return sum(ledger.fees for ledger in self.ledgers.values())

    # -- timers and logging -------------------------------------------------------------------------

    def set_timer(self, name: str, seconds: float, repeat: bool = True) -> None:
        """Call on_timer(name) `seconds` from now, and every `seconds` after if `repeat`."""
        interval = int(seconds * 1e9)
        if interval <= 0:
            raise StrategyError("a timer needs a positive interval")
        self.timers.set(Timer(name, self.now + interval, interval, repeat))

    def cancel_timer(self, name: str) -> None:
        self.timers.cancel(name)

    def log(self, message: str, **fields: Any) -> None:
        text = message if not fields else f"{message} " + " ".join(f"{k}={v}" for k, v in fields.items())
        self.messages.append((self.now, text))
        if len(self.messages) > 10_000:
            del self.messages[:5_000]
        self.logger.info("strategy.log %s", text)

    # -- signals ----------------------------------------------------------------------------------

    def publish_signal(self, side: str | None = None, value: float | None = None, symbol: str | None = None,
                       **extra: Any) -> dict[str, Any]:
        """Publish a trading signal (a side, a value, or both) to the peers subscribed to the daemon's
        own peer (`[p2p]`); extra fields travel as they are. Returns the signal as sent."""
        if side is not None and side not in (BUY, SELL):
            raise StrategyError(f"side is {BUY} or {SELL}, not {side!r}")
        if side is None and value is None:
            raise StrategyError("a signal needs a side or a value")
        doc: dict[str, Any] = {"symbol": symbol or self.symbols[0]}
        if side is not None:
            doc["side"] = side
        if value is not None:
            doc["value"] = value
        doc.update(extra)
        doc["time"] = self.now // 1_000_000
        self.published.append(doc)
        if len(self.published) > 10_000:
            del self.published[:5_000]
        self._publish(doc)
        return doc

    def _publish(self, doc: dict[str, Any]) -> None:
        """Where a live host sends a published signal; a backtest only keeps it."""

    # -- units ------------------------------------------------------------------------------------

    def to_ticks(self, symbol: str, price: float | Decimal | str) -> int:
        inst = self.instruments[symbol]
        if isinstance(price, float) or isinstance(price, int):
            return max(1, round(price / self._ticks[symbol][0]))
        return max(1, int((Decimal(price) / inst.tick_size).to_integral_value()))

    def to_lots(self, symbol: str, qty: float | Decimal | str) -> int:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise StrategyError(f"unknown symbol {symbol!r}")
        if isinstance(qty, float) or isinstance(qty, int):
            return round(qty / self._ticks[symbol][1])
        return int((Decimal(qty) / inst.lot_size).to_integral_value())

    # -- called by the host with the venue's events -----------------------------------------------

    def record_fill(self, ts: int, order_id: str, price: int, lots: int, open_lots: int, fee: int,
                    liquidity: str) -> FillData:
        """`open_lots` is what the venue left open after this match: the truth, whatever amends of
        the order are still on their way."""
        order = self.orders[order_id]
        symbol = order.symbol
        ledger = self.ledgers.get(symbol)
        if ledger is None:
            ledger = self.ledgers[symbol] = SymbolLedger(self.instruments[symbol])
        tick, lot = ledger.tick, ledger.lot
        qty = lots * lot
        px = price * tick
        fee_q = fee / CASH_SCALE
        if order.side == BUY:
            ledger.lots += lots
            ledger.cash -= px * qty
        else:
            ledger.lots -= lots
            ledger.cash += px * qty
        ledger.cash -= fee_q
        ledger.fees += fee_q
        order.filled_qty += qty
        order.open_qty = open_lots * lot
        if open_lots == 0:
            order.status = "filled"
            del self.orders[order_id]
        else:
            order.status = "partially_filled"
        return FillData(ts, order_id, symbol, order.side, px, qty, fee_q, liquidity, ledger.lots * lot)

    def record_update(self, order_id: str, price: int | None, open_lots: int | None, answer: bool) -> OrderData | None:
        """Accepted or amended (`answer`: it answers one of our requests), or triggered: the venue's
        price and open quantity. `open_lots` None leaves the quantity to the event that closes it."""
        order = self.orders.get(order_id)
        if order is None:
            return None
        tick, lot = self._ticks[order.symbol]
        if order.status == "pending":
            order.status = "new"
        if price is not None:
            order.price = price * tick
        if open_lots is not None:
            order.open_qty = open_lots * lot
            order.qty = order.filled_qty + order.open_qty
        if answer:
            order.in_flight = max(0, order.in_flight - 1)
            order.reason = ""
        return order

    def record_closed(self, order_id: str, status: str, reason: str) -> OrderData | None:
        """Cancelled or expired: the order leaves the view."""
        order = self.orders.get(order_id)
        if order is None:
            return None
        order.status, order.reason, order.open_qty = status, reason, 0.0
        del self.orders[order_id]
        return order

    def record_refusal(self, order_id: str, op: str, reason: str) -> OrderData | None:
        """The venue refused a request on one of our orders. A refused new order ends as rejected; a
        request the venue answers with "no such open order" ends the order in the view too (it ended
        unseen, e.g. when a failed write voided it), so nothing is sent for it again. Any other
        refusal leaves the order as the venue has it, with `reason` saying why."""
        order = self.orders.get(order_id)
        if order is None:
            return None
        if op == "new":
            return self.record_closed(order_id, "rejected", reason)
        order.in_flight = max(0, order.in_flight - 1)
        if reason in GONE:
            return self.record_closed(order_id, "cancelled", reason)
        order.reason = reason
        return order


def target_legs(current: int, goal: int) -> list[tuple[bool, int, bool]]:
    """(buy, lots, reduce_only) of the market orders that take a position from `current` to `goal`
    lots: a reduction reduce-only (it needs no cash held), a reversal as a reduce-only close plus a
    new order. The backtester's fast path sends the same legs without a context."""
    legs = []
    if current and (goal == 0 or (goal > 0) != (current > 0) or abs(goal) < abs(current)):
        close = current if (goal == 0 or (goal > 0) != (current > 0)) else current - goal
        legs.append((close < 0, abs(close), True))
        current -= close
    if goal != current:
        legs.append((goal > current, abs(goal - current), False))
    return legs
