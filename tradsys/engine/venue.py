"""The venue: books, orders, accounts and risk behind one synchronous API.

Every call takes the engine clock from its command (`ts`, nanoseconds) and returns the events it
caused, in the order they happened. Nothing here reads a wall clock, a file or a socket, so the
same commands always give the same events: the daemon, the backtester and `tradsys replay` all
run this code.

The path of a new order: validate -> pre-trade risk -> accept (hold cash, count open qty) ->
match against the book -> book fills (positions, fees, cash) -> rest, cancel the remainder or
expire it -> trigger stop orders that the new last price crossed.
"""

from dataclasses import dataclass
from decimal import Decimal
from heapq import heappop, heappush
from typing import Final, Iterable

from mypy_extensions import mypyc_attr

from tradsys.engine.account import Account, Wallet
from tradsys.engine.book import OrderBook
from tradsys.engine.enums import OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce
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
from tradsys.engine.instrument import DEFAULT_INSTRUMENTS, Instrument, from_cash, to_cash, to_decimal
from tradsys.engine.order import Order
from tradsys.engine.position import Position, product
from tradsys.engine.recent import RecentIds
from tradsys.engine.risk import SECOND_NS, CircuitBreaker, Limits, RiskLimits

DAY_NS: Final = 86_400 * SECOND_NS
SEEN_IDS: Final = 100_000
"""Order ids remembered for duplicate detection and `order_closed` answers: at least this many, at
most twice (~20 MB). The daemon, its simulated market and strategies never reuse an id; an order
older than that is answered `unknown_order` instead of `order_closed`."""
FEE_SCALE: Final = 1_000_000
"""Fee rates are integers in millionths (1 bp = 100), so 0.25 bp is representable exactly."""

# Final: compiled, these are C statics instead of module dict lookups on every use.
BUY: Final = Side.BUY
SELL: Final = Side.SELL
LIMIT: Final = OrderType.LIMIT
MARKET: Final = OrderType.MARKET
STOP: Final = OrderType.STOP
STOP_LIMIT: Final = OrderType.STOP_LIMIT
NEW: Final = OrderStatus.NEW
PARTIAL: Final = OrderStatus.PARTIALLY_FILLED
FILLED: Final = OrderStatus.FILLED
CANCELLED: Final = OrderStatus.CANCELLED
EXPIRED: Final = OrderStatus.EXPIRED
REJECTED: Final = OrderStatus.REJECTED
GTC: Final = TimeInForce.GTC
IOC: Final = TimeInForce.IOC
FOK: Final = TimeInForce.FOK
DAY: Final = TimeInForce.DAY
GTD: Final = TimeInForce.GTD


def fee_rate(bps: object) -> int:
    """Basis points (negative = rebate) as an integer rate in millionths."""
    rate = to_decimal(bps, "fee") * 100
    if rate != rate.to_integral_value():
        raise ValueError(f"fee {bps} bps is finer than 0.01 bp")
    return int(rate)


def _magnitude(n: int) -> int:
    """abs(n): compiled, the builtin is a generic Python call on a boxed int."""
    return n if n >= 0 else -n


@dataclass
class VenueConfig:
    maker_fee_bps: Decimal = Decimal("1")
    taker_fee_bps: Decimal = Decimal("5")
    initial_balances: dict[str, Decimal] | None = None
    """Cash every new account starts with; default 1,000,000 USD."""
    risk: bool = True
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
        self.breakers: dict[str, CircuitBreaker] = {}
        self.halted: dict[str, str] = {}
        """Manual halts: symbol -> reason."""
        self.kill_switch = False
        self.kill_reason = ""
        self.kill_changed_ns = 0
        self.risk = config.risk
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
        self._stops: dict[str, tuple[list[tuple[int, int, Order]], list[tuple[int, int, Order]]]] = {
            s: ([], []) for s in self.instruments
        }
        self._reduce_only_open = 0
        """Open reduce-only orders of all accounts: a sweep looks for some to trim only if there are any."""
        for symbol in self.instruments:
            self._reset_breaker(symbol)

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
            return "halted"
        if self.breakers[symbol].is_open(self.now):
            return "circuit_breaker"
        return None

    def reference_price(self, symbol: str) -> int | None:
        """Last trade, else mid: the centre of the price band and the mark for unrealized PnL."""
        last = self.last[symbol]
        if last is None:  # not `last if last is not None else ...`: compiled, that unboxes and boxes it again
            last = self.books[symbol].mid()
        return last

    # -- commands ------------------------------------------------------------------------

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
        self._reset_breaker(symbol)

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
                self._reset_breaker(sym, keep_halt=True)

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
        """Every refusal a new order can meet. The order of the checks decides which reason an order
        with several faults gets; what a plain limit order does not need branches off. Returns what it
        looked up for `_accept`: the account, the instrument and the position (None before the account's
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
        if self.kill_switch:
            raise Rejected("kill_switch", "the kill switch is on: no new orders")
        if (self.halted and symbol in self.halted) or self.breakers[symbol].halted_until > self.now:
            raise Rejected(self.halt_reason(symbol) or "halted", f"{symbol} is halted")
        qty, price = order.qty, order.price
        if qty <= 0:
            raise Rejected("invalid_qty", "qty must be positive")
        if order.type is LIMIT and order.stop_price is None:
            if price is None or price <= 0:
                raise Rejected("invalid_price", "a limit order needs a positive price")
        else:
            self._admit_type(order)
        if order.tif is not GTC or order.expire_ns is not None:
            self._admit_tif(order)
        pos = acct.positions.get(symbol)
        reduce_only = order.reduce_only
        if reduce_only or order.post_only:
            self._admit_flags(order, pos)
        if not self.risk:
            return acct, inst, pos
        limits = self.limits.resolved(account, inst)
        if limits.rate is not None:
            self._throttle(acct, limits.rate, dry_run)
        if limits.loss is not None and not reduce_only:
            self._check_loss(acct, limits)
        if qty < inst.min_qty or qty > inst.max_qty:
            limit, name = (inst.min_qty, "min_qty") if qty < inst.min_qty else (inst.max_qty, "max_qty")
            raise Rejected(name, f"qty {inst.qty(qty)} is outside the {name.replace('_', ' ')} {inst.qty(limit)}")
        if price is None:
            price = self._market_price(order, limits)
            if price is None:
                return acct, inst, pos
        elif limits.band_ppm is not None:
            ref = self.reference_price(symbol) if order.stop_price is None else order.stop_price
            if ref is not None:
                self._check_band(inst, limits, price, ref)
        if reduce_only:
            return acct, inst, pos
        wallet = pos.wallet if pos is not None else acct.wallet(inst.quote)
        self._check_size(inst, limits, pos, wallet, order.side, price, qty, qty, price * qty * inst.cash_mult)
        return acct, inst, pos

    def _admit_type(self, order: Order) -> None:
        otype = order.type
        if otype is LIMIT or otype is STOP_LIMIT:
            if order.price is None or order.price <= 0:
                raise Rejected("invalid_price", f"a {otype} order needs a positive price")
        elif order.price is not None:
            raise Rejected("invalid_price", f"a {otype} order takes no price")
        if otype is STOP or otype is STOP_LIMIT:
            if order.stop_price is None or order.stop_price <= 0:
                raise Rejected("invalid_stop_price", f"a {otype} order needs a positive stop price")
        elif order.stop_price is not None:
            raise Rejected("invalid_stop_price", f"a {otype} order takes no stop price")
        if otype is MARKET and (order.tif is not IOC and order.tif is not FOK):
            order.tif = IOC

    def _admit_tif(self, order: Order) -> None:
        if order.tif is GTD:
            if order.expire_ns is None or order.expire_ns <= self.now:
                raise Rejected("invalid_expire", "a GTD order needs an expiry after the engine clock")
        elif order.tif is DAY:
            order.expire_ns = (self.now // DAY_NS + 1) * DAY_NS
        elif order.expire_ns is not None:
            raise Rejected("invalid_expire", f"a {order.tif} order takes no expiry")

    def _admit_flags(self, order: Order, pos: Position | None) -> None:
        if order.post_only:
            price = order.price
            if order.type is not LIMIT or price is None or order.tif is IOC or order.tif is FOK:
                raise Rejected("invalid_post_only", "post-only needs a resting limit order")
            if self.books[order.symbol].would_take(order.side, price):
                raise Rejected("post_only", "post-only order would take liquidity")
        if order.reduce_only:
            held = 0 if pos is None else (-pos.qty if order.side is BUY else pos.qty)
            if order.qty > held:
                raise Rejected("reduce_only", f"reduce-only order for {order.qty} lots exceeds the {max(held, 0)} it can reduce")

    def _check_loss(self, acct: Account, limits: Limits) -> None:
        if limits.loss is not None and acct.loss_day == self.now // DAY_NS and -acct.day_realized >= limits.loss:
            raise Rejected("daily_loss_limit", "the account reached its daily loss limit")

    @staticmethod
    def _check_size(
        inst: Instrument, limits: Limits, pos: Position | None, wallet: Wallet, side: Side, price: int, qty: int,
        added: int, extra_hold: int,
    ) -> None:
        """Notional, position and balance limits for an order of `qty` at `price` that adds `added`
        lots of possible exposure and needs `extra_hold` more cash held."""
        notional = price * qty * inst.cash_mult
        if limits.max_notional is not None and notional > limits.max_notional:
            raise Rejected(
                "max_notional",
                f"order notional {inst.notional(price, qty):,} > limit {from_cash(limits.max_notional):,} {inst.quote}",
            )
        if limits.max_position is not None and added > 0:
            if pos is None:
                exposure = added
            elif side is BUY:
                exposure = pos.qty + pos.open_buy + added
            else:
                exposure = -(pos.qty - pos.open_sell - added)
            if exposure > limits.max_position:
                raise Rejected(
                    "max_position",
                    f"position could reach {inst.qty(exposure)} > limit {inst.qty(limits.max_position)} {inst.base}",
                )
        if extra_hold > 0 and extra_hold > wallet.balance - wallet.reserved - wallet.margin:
            raise Rejected(
                "insufficient_balance",
                f"order needs {from_cash(extra_hold):,} {inst.quote} more, available {from_cash(wallet.available):,}",
            )

    def _throttle(self, acct: Account, rate: int, dry_run: bool) -> None:
        """Count an order against its account's per-second budget (engine-clock seconds)."""
        second = self.now // SECOND_NS
        count = acct.rate_count if acct.rate_second == second else 0
        if count >= rate:
            raise Rejected("rate_limit", f"more than {rate} orders per second")
        if not dry_run:
            acct.rate_second, acct.rate_count = second, count + 1

    @staticmethod
    def _check_band(inst: Instrument, limits: Limits, price: int, ref: int) -> None:
        if limits.band_ppm is not None and _magnitude(price - ref) * 1_000_000 > ref * limits.band_ppm:
            raise Rejected(
                "price_band",
                f"price {inst.price(price)} is more than {limits.band_ppm / 10_000:g}% from {inst.price(ref)}",
            )

    def _market_price(self, order: Order, limits: Limits | None) -> int | None:
        """The worst price a market order may trade at: the edge of the band around the reference.

        Without a band (`limits` None or no band limit) this is the reference itself, used only to
        size the cash hold; the order then sweeps the book at any price.
        """
        symbol = order.symbol
        if order.type is STOP:
            ref = order.stop_price if not order.triggered else self.reference_price(symbol)
        else:
            ref = self.reference_price(symbol)
        book = self.books[symbol]
        if ref is None:
            ref = book.best_ask() if order.side is BUY else book.best_bid()
            if ref is None:
                return None
        if limits is None or limits.band_ppm is None:
            return ref
        return self._band_edge(order.side, ref, limits)

    @staticmethod
    def _band_edge(side: Side, ref: int, limits: Limits) -> int:
        band = ref * (limits.band_ppm or 0) // 1_000_000
        return ref + band if side is BUY else max(1, ref - band)

    # -- acceptance and execution ----------------------------------------------------------

    def _accept(self, order: Order, acct: Account, inst: Instrument, pos: Position | None, out: list[Event]) -> None:
        oid = order.id
        self._seen_ids.add(oid)
        if order.client_id is not None:
            acct.client_ids.add(order.client_id)
        order.seq = self._seq = self._seq + 1
        self.orders[oid] = order
        order.acct = acct
        if pos is None:
            pos = acct.position(order.symbol, inst.quote)
        order.pos = pos
        qty = order.qty
        if order.side is BUY:
            pos.open_buy += qty
        else:
            pos.open_sell += qty
        if order.reduce_only:
            acct.reduce_only_open += 1
            self._reduce_only_open += 1
        else:
            price = order.price
            if price is None:
                price = self._market_price(order, self._limits(order))
            if price is not None:
                order.hold_price = price
                pos.wallet.reserved += price * qty * inst.cash_mult
        out.append(OrderAccepted(order.created_ns, order))
        if order.expire_ns is not None:
            heappush(self._expiries, (order.expire_ns, order.seq, order))
        if order.type is STOP or order.type is STOP_LIMIT:
            self._arm(order, out)
        else:
            self._execute(order, out)

    def _limits(self, order: Order) -> Limits | None:
        return self.limits.resolved(order.account, self.instruments[order.symbol]) if self.risk else None

    def _arm(self, order: Order, out: list[Event]) -> None:
        """Wait for the stop price, or trigger at once when the last trade is already through it."""
        last = self.last[order.symbol]
        stop = order.stop_price
        assert stop is not None, "only stop orders are armed"
        if last is not None and (last >= stop if order.side is BUY else last <= stop):
            self._trigger(order, out)
            return
        self._wait(order, stop)

    def _wait(self, order: Order, stop: int) -> None:
        buys, sells = self._stops[order.symbol]
        if order.side is BUY:
            heappush(buys, (stop, order.seq, order))
        else:
            heappush(sells, (-stop, order.seq, order))

    def _trigger(self, order: Order, out: list[Event]) -> None:
        order.triggered = True
        order.updated_ns = self.now
        out.append(OrderTriggered(self.now, order))
        self._execute(order, out)

    def _execute(self, order: Order, out: list[Event]) -> None:
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
            limits = self._limits(order)
            limit = None if limits is None or limits.band_ppm is None else self._market_price(order, limits)
        # No open reduce-only order, no reduce-only maker: compiled, binding the method costs ~300 instructions.
        reduce_cap = self._reduce_cap if self._reduce_only_open else None
        if tif is FOK:
            dry, _, _ = book.match(order, limit, self.stp, reduce_cap, dry=True)
            if sum(qty for _, _, qty in dry) < order.open_qty:
                self._finish(order, CANCELLED, "fok_unfilled", out)
                return
        matches, cancelled, taker_stopped = book.match(order, limit, self.stp, reduce_cap)
        if matches or cancelled:
            self._fill(order, matches, cancelled, out)
        if order.open_qty:
            if taker_stopped:
                self._finish(order, CANCELLED, "self_trade", out)
            elif rests:
                book.add(order)
            else:
                self._finish(order, CANCELLED, "unfilled_remainder", out)
        if matches:
            stops = self._stops[order.symbol]
            if stops[0] or stops[1]:
                self._fire_stops(order.symbol, out)

    def _reduce_cap(self, maker: Order, taker: Order, pending: list[tuple[Order, int, int]]) -> int:
        """How much a resting reduce-only order may still fill, counting this sweep's earlier matches."""
        account = maker.account
        qty = maker.pos.qty
        for other, _, filled in pending:
            if other.account == account:
                qty += filled if other.side is BUY else -filled
            if taker.account == account:
                qty += filled if taker.side is BUY else -filled
        return max(0, -qty if maker.side is BUY else qty)

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
        """Each match: both orders' state, positions, fees and cash, and its fill event."""
        symbol = taker.symbol
        mult = self.instruments[symbol].cash_mult
        now = self.now
        day = now // DAY_NS
        # Fee rates per tick x lot rather than per cash unit: compiled, ticks x lots times these stays
        # in machine integers, where the notional (2**30 or more) times a rate would not.
        taker_rate, maker_rate = mult * self.taker_rate, mult * self.maker_rate
        trade_id = self._trade_seq
        for maker, price, qty in matches:
            traded = price * qty
            notional = traded * mult
            taker_fee = -(-(traded * taker_rate) // FEE_SCALE)
            maker_fee = -(-(traded * maker_rate) // FEE_SCALE)
            self._settle(taker, price, qty, notional, taker_fee, mult, day)
            self._settle(maker, price, qty, notional, maker_fee, mult, day)
            trade_id += 1
            out.append(OrderFilled(now, trade_id, symbol, taker, maker, price, qty, taker_fee, maker_fee,
                                   taker.open_qty, maker.open_qty))
        self._trade_seq = trade_id

    def _settle(self, order: Order, price: int, qty: int, notional: int, fee: int, mult: int, day: int) -> None:
        """One side of a match. Positions are margined at cost, so the wallet's margin follows |cost|;
        a fill that adds to a position moves |cost| by exactly its notional (the cost basis always has
        the position's sign)."""
        open_qty = order.open_qty - qty
        order.open_qty = open_qty
        traded = price * qty
        order.filled_qty += qty
        order.filled_cost += traded
        order.updated_ns = self.now
        pos = order.pos
        wallet = pos.wallet
        held = pos.qty
        # Signs compared, not multiplied: compiled, a product with a negative operand takes the slow path.
        buy = order.side is BUY
        if buy:
            pos.open_buy -= qty
            signed = qty
        else:
            pos.open_sell -= qty
            signed = -qty
        if held == 0 or (held > 0) == buy:
            pos.qty = held + signed
            pos.cost += traded if buy else -traded
            wallet.margin += notional
            cash = -fee
        else:
            before = _magnitude(pos.cost)
            cash = product(pos.reduce(signed, price), mult) - fee
            wallet.margin -= (before - _magnitude(pos.cost)) * mult  # shrinks: a positive product is cheaper
        pos.fees += fee
        wallet.balance += cash
        wallet.reserved -= order.hold_price * qty * mult
        acct = order.acct
        if acct.loss_day != day:
            acct.loss_day, acct.day_realized = day, 0
        acct.day_realized += cash
        if open_qty:
            order.status = PARTIAL
        else:
            order.status = FILLED
            del self.orders[order.id]
            if order.reduce_only:
                acct.reduce_only_open -= 1
                self._reduce_only_open -= 1

    def _trim_reduce_only(self, acct: Account, symbol: str, out: list[Event]) -> None:
        """Resting reduce-only orders may never add exposure: shrink or cancel them as the position shrinks."""
        pos = acct.positions[symbol]
        for order in [o for o in self.orders.values() if o.account == acct.id and o.symbol == symbol and o.reduce_only]:
            held = max(0, -pos.qty if order.side is BUY else pos.qty)
            if order.open_qty <= held:
                continue
            if held == 0:
                self._finish(order, CANCELLED, "reduce_only", out)
            else:
                self._shrink(order, held)
                out.append(OrderAmended(self.now, order))

    def _shrink(self, order: Order, open_qty: int) -> None:
        """Lower open quantity in place, keeping priority, and release what the difference held."""
        delta = order.open_qty - open_qty
        pos = order.pos
        if order.side is BUY:
            pos.open_buy -= delta
        else:
            pos.open_sell -= delta
        pos.wallet.reserved -= order.hold_price * delta * self.instruments[order.symbol].cash_mult
        book = self.books[order.symbol]
        if book.contains(order):
            book.reduce(order, open_qty)
        else:
            order.open_qty = open_qty
        order.qty -= delta

    def _fire_stops(self, symbol: str, out: list[Event]) -> None:
        buys, sells = self._stops[symbol]
        while True:
            last = self.last[symbol]
            if last is None:
                return
            if buys and buys[0][0] <= last:
                _, seq, order = heappop(buys)
            elif sells and -sells[0][0] >= last:
                _, seq, order = heappop(sells)
            else:
                return
            if seq != order.seq or order.triggered or not (order.status is NEW or order.status is PARTIAL):
                continue
            if self.halt_reason(symbol) is not None:
                assert order.stop_price is not None
                self._wait(order, order.stop_price)
                return
            self._trigger(order, out)

    def _finish(self, order: Order, status: OrderStatus, reason: str, out: list[Event]) -> None:
        """End an open order: out of the book, its holds and open quantity released."""
        self.books[order.symbol].discard(order)
        pos, open_qty = order.pos, order.open_qty
        if order.side is BUY:
            pos.open_buy -= open_qty
        else:
            pos.open_sell -= open_qty
        pos.wallet.reserved -= order.hold_price * open_qty * self.instruments[order.symbol].cash_mult
        if order.reduce_only:
            order.acct.reduce_only_open -= 1
            self._reduce_only_open -= 1
        order.open_qty = 0
        order.status = status
        order.updated_ns = now = self.now
        del self.orders[order.id]
        if status is EXPIRED:
            out.append(OrderExpired(now, order))
        else:
            out.append(OrderCancelled(now, order, reason))

    # -- amend -----------------------------------------------------------------------------

    def _open_order(self, order_id: str, account: str | None, op: str, ts: int, out: list[Event]) -> Order | None:
        order = self.orders.get(order_id)
        if order is None or (account is not None and order.account != account):
            reason = "order_closed" if order is None and order_id in self._seen_ids else "unknown_order"
            out.append(OrderRejected(ts, order_id, account or "", reason, f"no open order {order_id!r}", op=op))
            return None
        return order

    def _amend(self, order: Order, price: int | None, qty: int | None, stop_price: int | None, ts: int,
               out: list[Event]) -> None:
        if qty is not None and qty <= 0:
            raise Rejected("invalid_qty", "new open qty must be positive")
        if price is not None and price <= 0:
            raise Rejected("invalid_price", "price must be positive")
        if price is not None and order.price is None:
            raise Rejected("invalid_price", f"a {order.type} order has no price to amend")
        if stop_price is not None and (order.stop_price is None or order.triggered):
            raise Rejected("invalid_stop_price", "only a pending stop order has a stop price to amend")
        new_price = order.price if price is None else price
        new_open = order.open_qty if qty is None else qty
        new_stop = order.stop_price if stop_price is None else stop_price
        if new_price == order.price and new_stop == order.stop_price and new_open <= order.open_qty:
            if new_open < order.open_qty:
                self._shrink(order, new_open)
            order.updated_ns = ts
            out.append(OrderAmended(ts, order))
            return
        if self.kill_switch:
            raise Rejected("kill_switch", "the kill switch is on")
        halt = self.halt_reason(order.symbol)
        if halt is not None:
            raise Rejected(halt, f"{order.symbol} is halted: only size reductions are accepted")
        book = self.books[order.symbol]
        resting = order.type is LIMIT or order.triggered
        if order.post_only and new_price is not None and book.would_take(order.side, new_price):
            raise Rejected("post_only", "post-only order would take liquidity at the new price")
        self._check_amend(order, new_price, new_open, new_stop)
        book.discard(order)
        delta = new_open - order.open_qty
        pos = order.pos
        if order.side is BUY:
            pos.open_buy += delta
        else:
            pos.open_sell += delta
        order.price, order.stop_price = new_price, new_stop
        if order.hold_price:
            mult = self.instruments[order.symbol].cash_mult
            pos.wallet.reserved -= order.hold_price * order.open_qty * mult
            hold_price = new_price if new_price is not None else self._market_price(order, self._limits(order))
            order.hold_price = hold_price or 0
            pos.wallet.reserved += order.hold_price * new_open * mult
        order.qty += delta
        order.open_qty = new_open
        order.updated_ns = ts
        self._seq += 1
        order.seq = self._seq
        out.append(OrderAmended(ts, order))
        if resting:
            self._execute(order, out)
        else:
            self._arm(order, out)

    def _check_amend(self, order: Order, price: int | None, open_qty: int, stop: int | None) -> None:
        pos = order.pos
        delta = open_qty - order.open_qty
        if order.reduce_only:
            held = max(0, -pos.qty if order.side is BUY else pos.qty)
            if open_qty > held:
                raise Rejected("reduce_only", f"reduce-only order for {open_qty} lots exceeds the {held} it can reduce")
        if not self.risk:
            return
        inst = self.instruments[order.symbol]
        acct = order.acct
        limits = self.limits.resolved(order.account, inst)
        if limits.rate is not None:
            self._throttle(acct, limits.rate, dry_run=False)
        if delta > 0 and not order.reduce_only:
            self._check_loss(acct, limits)
        if price is not None:
            ref = stop if stop is not None and not order.triggered else self.reference_price(order.symbol)
            if ref is not None:
                self._check_band(inst, limits, price, ref)
        total = order.filled_qty + open_qty
        if total > inst.max_qty:
            raise Rejected("max_qty", f"qty {inst.qty(total)} above maximum {inst.qty(inst.max_qty)}")
        if order.reduce_only:
            return
        if price is None:
            ref = stop if stop is not None and not order.triggered else self.reference_price(order.symbol)
            price = None if ref is None else self._band_edge(order.side, ref, limits)
        if price is not None:
            extra = (price * open_qty - order.hold_price * order.open_qty) * inst.cash_mult
            self._check_size(inst, limits, pos, pos.wallet, order.side, price, open_qty, delta, extra)

    def _reset_breaker(self, symbol: str, keep_halt: bool = False) -> None:
        old = self.breakers.get(symbol)
        get = self.limits.get
        window, cooldown = get("breaker_window_s", None, symbol), get("breaker_cooldown_s", None, symbol)
        assert window is not None and cooldown is not None, "limits refuse None for these"
        breaker = CircuitBreaker(get("breaker_move_pct", None, symbol), window, cooldown)
        if keep_halt and old is not None:
            breaker.halted_until, breaker.tripped_ns, breaker.reason = old.halted_until, old.tripped_ns, old.reason
        self.breakers[symbol] = breaker
