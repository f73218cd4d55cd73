"""The venue: books, orders and accounts behind one synchronous API.

Every call takes the engine clock from its command (`ts`, nanoseconds) and returns the events it
caused, in the order they happened. Nothing here reads a wall clock, a file or a socket, so the
same commands always give the same events: the daemon, the backtester and `tradsys replay` all
run this code.

The path of a new order: admission (symbol and ids here, then the risk engine: `risk.py`) ->
accept (hold cash, count open qty) -> match against the book -> settle the fills (positions, fees,
cash: `settlement.py`) -> rest, cancel the remainder or expire it -> trigger the stop orders that
the new last price reached (`stops.py`).
"""

from dataclasses import dataclass
from decimal import Decimal
from heapq import heappop, heappush
from typing import Final, Iterable

from mypy_extensions import mypyc_attr

from tradsys.engine.account import Account
from tradsys.engine.book import OrderBook
from tradsys.engine.breaker import CircuitBreaker, breaker_for
from tradsys.engine.clock import DAY_NS
from tradsys.engine.enums import OrderStatus, OrderType, SelfTradePrevention, TimeInForce
from tradsys.engine.errors import Rejected
from tradsys.engine.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from tradsys.engine.instrument import DEFAULT_INSTRUMENTS, Instrument, to_cash
from tradsys.engine.limits import RiskLimits
from tradsys.engine.order import Order
from tradsys.engine.position import Position, reduce_cap, reducible
from tradsys.engine.recent import RecentIds
from tradsys.engine.risk import RiskEngine, check_amend_shape, check_shape
from tradsys.engine.settlement import fee_for, fee_rate, hold, release, settle
from tradsys.engine.stops import StopOrders

HALT_CODES: Final = frozenset({"feed_stale"})
"""Halt reasons that are refusal reasons of their own (a daemon's stale exchange feed); orders on a
symbol halted for any other reason (by hand, with whatever text) are refused as `halted`."""
SEEN_IDS: Final = 100_000
"""Order ids remembered for duplicate detection and `order_closed` answers: at least this many, at
most twice as many, so that a venue that runs for months keeps a bounded memory of them. The
daemon, its simulated market and strategies never reuse an id; an order older than that is
answered `unknown_order` instead of `order_closed`."""

# Final: compiled, these are C statics instead of module dict lookups on every use.
LIMIT: Final = OrderType.LIMIT
STOP_LIMIT: Final = OrderType.STOP_LIMIT
NEW: Final = OrderStatus.NEW
PARTIAL: Final = OrderStatus.PARTIALLY_FILLED
CANCELLED: Final = OrderStatus.CANCELLED
EXPIRED: Final = OrderStatus.EXPIRED
REJECTED: Final = OrderStatus.REJECTED
IOC: Final = TimeInForce.IOC
FOK: Final = TimeInForce.FOK


@dataclass
class VenueConfig:
    maker_fee_bps: Decimal = Decimal("1")
    taker_fee_bps: Decimal = Decimal("5")
    initial_balances: dict[str, Decimal] | None = None
    """Cash every new account starts with; default 1,000,000 USD."""
    risk: bool = True
    """False: no limits (the risk engine's other rules still apply)."""
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_RESTING


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Venue:
    __slots__ = (
        "instruments", "books", "last", "orders", "accounts", "limits", "breakers", "halted", "kill_switch",
        "kill_reason", "kill_changed_ns", "risk", "stp", "maker_rate", "taker_rate", "initial_balances", "now",
        "_seen_ids", "_seq", "_trade_seq", "_expiries", "_stops", "_reduce_only_open",
    )

    def __init__(self, instruments: Iterable[Instrument] = DEFAULT_INSTRUMENTS, config: VenueConfig | None = None) -> None:
        config = config or VenueConfig()
        self.instruments: dict[str, Instrument] = {i.symbol: i for i in instruments}
        self.books: dict[str, OrderBook] = {s: OrderBook(s) for s in self.instruments}
        self.last: dict[str, int | None] = {s: None for s in self.instruments}
        self.orders: dict[str, Order] = {}
        """Open orders, resting or waiting for their stop price."""
        self.accounts: dict[str, Account] = {}
        self.limits = RiskLimits()
        self.breakers: dict[str, CircuitBreaker] = {s: breaker_for(self.limits, s) for s in self.instruments}
        self.halted: dict[str, str] = {}
        """Manual halts: symbol -> reason."""
        self.kill_switch = False
        self.kill_reason = ""
        self.kill_changed_ns = 0
        self.risk = RiskEngine(self, config.risk)
        self.stp = config.stp
        self.maker_rate = fee_rate(config.maker_fee_bps)
        self.taker_rate = fee_rate(config.taker_fee_bps)
        balances = config.initial_balances if config.initial_balances is not None else {"USD": Decimal(1_000_000)}
        self.initial_balances = {ccy: to_cash(amount) for ccy, amount in balances.items()}
        self.now = 0
        self._seen_ids = RecentIds(SEEN_IDS)
        self._seq = 0
        self._trade_seq = 0
        self._expiries: list[tuple[int, int, Order]] = []
        self._stops: dict[str, StopOrders] = {s: StopOrders() for s in self.instruments}
        self._reduce_only_open = 0
        """Open reduce-only orders of all accounts: a sweep looks for some to trim only if there are any."""

    # -- queries ---------------------------------------------------------------------------

    def account(self, account_id: str) -> Account:
        acct = self.accounts.get(account_id)
        if acct is None:
            acct = self.accounts[account_id] = Account(account_id, self.initial_balances)
        return acct

    def instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise Rejected("unknown_symbol", f"unknown symbol {symbol!r}; known: {', '.join(self.instruments)}")
        return inst

    def halt_reason(self, symbol: str) -> str | None:
        """Why new orders on `symbol` are refused right now, or None while it trades."""
        if symbol in self.halted:
            why = self.halted[symbol]
            return why if why in HALT_CODES else "halted"
        if self.breakers[symbol].is_open(self.now):
            return "circuit_breaker"
        return None

    def reference_price(self, symbol: str) -> int | None:
        """Last trade, else mid: the centre of the price band and the mark for unrealized PnL."""
        last = self.last[symbol]
        if last is None:  # not `last if last is not None else ...`: compiled, that unboxes and boxes it again
            last = self.books[symbol].mid()
        return last

    # -- commands --------------------------------------------------------------------------

    def place(self, order: Order) -> list[Event]:
        out: list[Event] = []
        ts = order.created_ns
        if ts > self.now:
            self._clock(ts, out)
        else:
            order.created_ns = order.updated_ns = ts = self.now
        try:
            acct, inst, pos = self._admit(order)
        except Rejected as rej:
            order.status = REJECTED
            out.append(OrderRejected(ts, order.id, order.account, rej.reason, rej.message))
            return out
        self._accept(order, acct, inst, pos, out)
        return out

    def check(self, order: Order) -> None:
        """Dry run of everything `place` would check; raises Rejected and changes nothing."""
        self._admit(order, dry_run=True)

    def cancel(self, order_id: str, ts: int = 0, account: str | None = None) -> list[Event]:
        out: list[Event] = []
        ts = self._clock(ts, out)
        order = self._open_order(order_id, account, "cancel", ts, out)
        if order is not None:
            self._finish(order, CANCELLED, "user", out)
        return out

    def cancel_all(self, ts: int = 0, account: str | None = None, symbol: str | None = None) -> list[Event]:
        out: list[Event] = []
        self._clock(ts, out)
        for order in list(self.orders.values()):
            if (account is None or order.account == account) and (symbol is None or order.symbol == symbol):
                self._finish(order, CANCELLED, "user", out)
        return out

    def amend(
        self,
        order_id: str,
        price: int | None = None,
        qty: int | None = None,
        stop_price: int | None = None,
        ts: int = 0,
        account: str | None = None,
    ) -> list[Event]:
        """Change price, open quantity or stop price.

        Lowering the quantity keeps time priority. Anything else loses it: the order leaves the
        book and arrives again, so a new price may trade at once.
        """
        out: list[Event] = []
        ts = self._clock(ts, out)
        order = self._open_order(order_id, account, "amend", ts, out)
        if order is None:
            return out
        try:
            self._amend(order, price, qty, stop_price, ts, out)
        except Rejected as rej:
            out.append(OrderRejected(ts, order.id, order.account, rej.reason, rej.message, op="amend"))
        return out

    def advance(self, ts: int) -> list[Event]:
        """Move the engine clock without a command: orders whose time is up expire."""
        out: list[Event] = []
        self._clock(ts, out)
        return out

    def halt(self, symbol: str, reason: str = "manual") -> None:
        self.instrument(symbol)
        self.halted[symbol] = reason

    def resume(self, symbol: str) -> None:
        """Lift a manual halt and close a tripped circuit breaker."""
        self.instrument(symbol)
        self.halted.pop(symbol, None)
        self.breakers[symbol] = breaker_for(self.limits, symbol)

    def set_kill_switch(self, on: bool, ts: int = 0, reason: str = "manual") -> list[Event]:
        """On: refuse every new order and cancel every open one."""
        out: list[Event] = []
        self._clock(ts, out)
        self.kill_switch = on
        self.kill_reason = reason if on else ""
        self.kill_changed_ns = self.now
        if on:
            for order in list(self.orders.values()):
                self._finish(order, CANCELLED, "kill_switch", out)
        return out

    def set_limit(self, key: str, value: object, account: str | None = None, symbol: str | None = None) -> None:
        if symbol is not None:
            self.instrument(symbol)
        self.limits.set(key, value, account, symbol)
        if key.startswith("breaker_"):
            for sym in self.instruments if symbol is None else (symbol,):
                self.breakers[sym] = breaker_for(self.limits, sym, self.breakers[sym])

    def deposit(self, account_id: str, currency: str, amount: object) -> None:
        self.account(account_id).wallet(currency).balance += to_cash(amount)

    # -- admission -------------------------------------------------------------------------

    def _clock(self, ts: int, out: list[Event]) -> int:
        if ts > self.now:
            self.now = ts
            expiries = self._expiries
            while expiries and expiries[0][0] <= ts:
                _, _, order = heappop(expiries)
                if order.status is NEW or order.status is PARTIAL:
                    self._finish(order, EXPIRED, "expired", out)
        return self.now

    def _admit(self, order: Order, dry_run: bool = False) -> tuple[Account, Instrument, Position | None]:
        """Every refusal a new order can meet, in the order that decides which reason an order with
        several faults gets: its symbol and ids, then the risk engine's rules. Returns what it looked
        up for `_accept`: the account, the instrument and the position (None before the account's
        first order in the symbol)."""
        symbol = order.symbol
        inst = self.instruments.get(symbol)
        if inst is None:
            raise Rejected("unknown_symbol", f"unknown symbol {symbol!r}")
        if order.id in self._seen_ids:
            raise Rejected("duplicate_order_id", f"order id {order.id!r} was used before")
        account = order.account
        acct = self.accounts.get(account) or self.account(account)
        if order.client_id is not None and order.client_id in acct.client_ids:
            raise Rejected("duplicate_client_id", f"client id {order.client_id!r} was used before by {account}")
        risk = self.risk
        risk.check_trading(symbol)
        check_shape(order, self.now)
        pos = acct.positions.get(symbol)
        risk.check(order, acct, pos, inst, order.price, order.stop_price, order.qty, 0, dry_run)
        return acct, inst, pos

    # -- acceptance and execution ----------------------------------------------------------

    def _accept(self, order: Order, acct: Account, inst: Instrument, pos: Position | None, out: list[Event]) -> None:
        oid = order.id
        self._seen_ids.add(oid)
        if order.client_id is not None:
            acct.client_ids.add(order.client_id)
        order.seq = self._seq = self._seq + 1
        self.orders[oid] = order
        order.acct = acct
        order.pos = pos if pos is not None else acct.position(order.symbol, inst.quote)
        if order.reduce_only:
            acct.reduce_only_open += 1
            self._reduce_only_open += 1
        else:
            order.hold_price = self.risk.hold_price(order)
        hold(order, order.qty, inst.cash_mult)
        out.append(OrderAccepted(order.created_ns, order))
        if order.expire_ns is not None:
            heappush(self._expiries, (order.expire_ns, order.seq, order))
        if order.stop_price is None or not self._stops[order.symbol].arm(order, self.last[order.symbol]):
            self._execute(order, out)

    def _execute(self, order: Order, out: list[Event]) -> None:
        """Match an order against the book, then rest or end what is left. A stop order comes here
        once the last trade reaches its stop price, and triggers."""
        if order.stop_price is not None and not order.triggered:
            order.triggered = True
            order.updated_ns = self.now
            out.append(OrderTriggered(self.now, order))
        book = self.books[order.symbol]
        otype, tif = order.type, order.tif
        if otype is LIMIT or otype is STOP_LIMIT:
            limit = order.price
            assert limit is not None, "limit orders are admitted with a price"
            rests = tif is not IOC and tif is not FOK
            if rests and not book.would_take(order.side, limit):
                book.add(order)
                return
        else:
            rests = False
            limit = self.risk.sweep_limit(order)
        # No open reduce-only order, no reduce-only maker: the book then skips the callback.
        cap = reduce_cap if self._reduce_only_open else None
        if tif is FOK:
            dry, _, _ = book.match(order, limit, self.stp, cap, dry=True)
            if sum(qty for _, _, qty in dry) < order.open_qty:
                self._finish(order, CANCELLED, "fok_unfilled", out)
                return
        matches, cancelled, taker_stopped = book.match(order, limit, self.stp, cap)
        if matches or cancelled:
            self._fill(order, matches, cancelled, out)
        if order.open_qty:
            if taker_stopped:
                self._finish(order, CANCELLED, "self_trade", out)
            elif rests:
                book.add(order)
            else:
                self._finish(order, CANCELLED, "unfilled_remainder", out)
        if matches and self._stops[order.symbol].pending():
            self._fire_stops(order.symbol, out)

    def _fill(self, taker: Order, matches: list[tuple[Order, int, int]], cancelled: list[tuple[Order, str, int]],
              out: list[Event]) -> None:
        """Book a taker's sweep in order: each match and each maker cancelled on the way; then last
        price, circuit breaker and reduce-only trimming."""
        done = 0
        for maker, reason, before in cancelled:
            if before > done:
                self._trades(taker, matches[done:before], out)
                done = before
            self._finish(maker, CANCELLED, reason, out)
        if done < len(matches):
            self._trades(taker, matches[done:] if done else matches, out)
        if not matches:
            return
        symbol = taker.symbol
        if self._reduce_only_open:
            for acct in dict.fromkeys([taker.acct, *[maker.acct for maker, _, _ in matches]]):
                if acct.reduce_only_open:
                    self._trim_reduce_only(acct, symbol, out)
        first, last = matches[0][1], matches[-1][1]
        self.last[symbol] = last
        breaker = self.breakers[symbol]
        if first != last:
            breaker.on_trade(self.now, first)
        breaker.on_trade(self.now, last)

    def _trades(self, taker: Order, matches: list[tuple[Order, int, int]], out: list[Event]) -> None:
        """Each match: both sides settled, and its fill event."""
        symbol = taker.symbol
        mult = self.instruments[symbol].cash_mult
        now = self.now
        day = now // DAY_NS
        taker_rate, maker_rate = mult * self.taker_rate, mult * self.maker_rate
        trade_id = self._trade_seq
        for maker, price, qty in matches:
            traded = price * qty
            notional = traded * mult
            taker_fee, maker_fee = fee_for(traded, taker_rate), fee_for(traded, maker_rate)
            settle(taker, price, qty, notional, taker_fee, mult, day, now)
            settle(maker, price, qty, notional, maker_fee, mult, day, now)
            trade_id += 1
            out.append(OrderFilled(now, trade_id, symbol, taker, maker, price, qty, taker_fee, maker_fee,
                                   taker.open_qty, maker.open_qty))
            if not maker.open_qty:
                self._close(maker)
        self._trade_seq = trade_id
        if not taker.open_qty:
            self._close(taker)

    def _trim_reduce_only(self, acct: Account, symbol: str, out: list[Event]) -> None:
        """Resting reduce-only orders may never add exposure: shrink or cancel them as the position shrinks."""
        pos = acct.positions[symbol]
        for order in [o for o in self.orders.values() if o.account == acct.id and o.symbol == symbol and o.reduce_only]:
            held = reducible(pos.qty, order.side)
            if order.open_qty <= held:
                continue
            if held == 0:
                self._finish(order, CANCELLED, "reduce_only", out)
            else:
                self._shrink(order, held)
                out.append(OrderAmended(self.now, order))

    def _fire_stops(self, symbol: str, out: list[Event]) -> None:
        """Trigger the stop orders the last price reached, one at a time: each may trade and move it."""
        stops = self._stops[symbol]
        while True:
            last = self.last[symbol]
            if last is None:
                return
            order = stops.pop_reached(last)
            if order is None:
                return
            if self.halt_reason(symbol) is not None:
                stops.wait(order)
                return
            self._execute(order, out)

    # -- ending and changing open orders ---------------------------------------------------

    def _shrink(self, order: Order, open_qty: int) -> None:
        """Lower open quantity in place, keeping priority, and release what the difference held."""
        delta = order.open_qty - open_qty
        release(order, delta, self.instruments[order.symbol].cash_mult)
        book = self.books[order.symbol]
        if book.contains(order):
            book.reduce(order, open_qty)
        else:
            order.open_qty = open_qty
        order.qty -= delta

    def _finish(self, order: Order, status: OrderStatus, reason: str, out: list[Event]) -> None:
        """End an open order: out of the book, its holds and open quantity released."""
        self.books[order.symbol].discard(order)
        release(order, order.open_qty, self.instruments[order.symbol].cash_mult)
        self._close(order)
        order.open_qty = 0
        order.status = status
        order.updated_ns = now = self.now
        if status is EXPIRED:
            out.append(OrderExpired(now, order))
        else:
            out.append(OrderCancelled(now, order, reason))

    def _close(self, order: Order) -> None:
        """Forget a finished order (filled, cancelled or expired): it leaves the open orders and the
        reduce-only counts."""
        del self.orders[order.id]
        if order.reduce_only:
            order.acct.reduce_only_open -= 1
            self._reduce_only_open -= 1

    def _open_order(self, order_id: str, account: str | None, op: str, ts: int, out: list[Event]) -> Order | None:
        order = self.orders.get(order_id)
        if order is None or (account is not None and order.account != account):
            reason = "order_closed" if order is None and order_id in self._seen_ids else "unknown_order"
            out.append(OrderRejected(ts, order_id, account or "", reason, f"no open order {order_id!r}", op=op))
            return None
        return order

    def _amend(self, order: Order, price: int | None, qty: int | None, stop_price: int | None, ts: int,
               out: list[Event]) -> None:
        """Lowering the size only, in place; any other change passes the same risk checks as a new
        order, for the order as it will be, and then arrives again."""
        check_amend_shape(order, price, qty, stop_price)
        new_price = order.price if price is None else price
        new_open = order.open_qty if qty is None else qty
        new_stop = order.stop_price if stop_price is None else stop_price
        if new_price == order.price and new_stop == order.stop_price and new_open <= order.open_qty:
            if new_open < order.open_qty:
                self._shrink(order, new_open)
            order.updated_ns = ts
            out.append(OrderAmended(ts, order))
            return
        symbol = order.symbol
        inst = self.instruments[symbol]
        risk = self.risk
        risk.check_trading(symbol)
        risk.check(order, order.acct, order.pos, inst, new_price, new_stop, new_open, order.open_qty, False)
        self.books[symbol].discard(order)
        release(order, order.open_qty, inst.cash_mult)
        order.price, order.stop_price = new_price, new_stop
        if order.hold_price:
            order.hold_price = risk.hold_price(order)
        hold(order, new_open, inst.cash_mult)
        order.qty += new_open - order.open_qty
        order.open_qty = new_open
        order.updated_ns = ts
        self._seq += 1
        order.seq = self._seq
        out.append(OrderAmended(ts, order))
        if order.stop_price is None or order.triggered or not self._stops[symbol].arm(order, self.last[symbol]):
            self._execute(order, out)
