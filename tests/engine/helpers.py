"""Terse helpers for engine tests: place orders with decimal strings, summarise events.

Tests talk to `Venue` directly (not through `commands.apply`) so that the engine tests do not
depend on the command format; `test_commands.py` covers that edge on its own.
"""

from __future__ import annotations

from decimal import Decimal

from tradsys.engine import (
    Event,
    Order,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    OrderType,
    Position,
    Side,
    TimeInForce,
    Venue,
    VenueConfig,
)
from tradsys.engine.account import Account

BTC, ETH, SOL = "BTC-USD", "ETH-USD", "SOL-USD"
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
CASH = 10**8
"""Cash amounts are integers in 1e-8 of the currency."""


def usd(amount: str | int) -> int:
    """'100.5' USD -> engine cash units (1e-8), computed exactly."""
    value = Decimal(amount) * CASH
    assert value == value.to_integral_value(), amount
    return int(value)


def text(value: Decimal) -> str:
    """Plain decimal text without trailing zeros: 100.00 -> '100', 0.500 -> '0.5'."""
    out = format(value, "f")
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return out


KIND = {
    OrderAccepted: "accepted",
    OrderRejected: "rejected",
    OrderFilled: "filled",
    OrderCancelled: "cancelled",
    OrderExpired: "expired",
    OrderAmended: "amended",
    OrderTriggered: "triggered",
}


def kinds(events: list[Event]) -> list[str]:
    return [KIND[type(e)] for e in events]


def rejection(events: list[Event]) -> str | None:
    """The reason of the (single) rejection among `events`, or None when nothing was rejected."""
    reasons = [e.reason for e in events if isinstance(e, OrderRejected)]
    assert len(reasons) <= 1, reasons
    return reasons[0] if reasons else None


def cancels(events: list[Event]) -> list[tuple[str, str]]:
    """(order id, reason) for every cancellation, in order."""
    return [(e.order.id, e.reason) for e in events if isinstance(e, OrderCancelled)]


class Sim:
    """A venue plus shorthand. Prices and quantities are decimal strings, as at the edge."""

    def __init__(self, venue: Venue | None = None, **config: object) -> None:
        self.v = venue if venue is not None else Venue(config=VenueConfig(**config))
        self._n = 0

    # -- commands ----------------------------------------------------------------------

    def order(
        self,
        oid: str,
        side: str,
        qty: str,
        price: str | None = None,
        *,
        account: str = "a1",
        symbol: str = BTC,
        type: str | None = None,
        tif: str = "GTC",
        stop: str | None = None,
        expire: int | None = None,
        ts: int = 0,
        post_only: bool = False,
        reduce_only: bool = False,
        client_id: str | None = None,
    ) -> list[Event]:
        inst = self.v.instruments[symbol]
        if type is None:
            if stop is not None:
                type = "stop_limit" if price is not None else "stop"
            else:
                type = "limit" if price is not None else "market"
        order = Order(
            oid,
            account,
            symbol,
            Side(side),
            OrderType(type),
            inst.qty_to_lots(qty),
            price=None if price is None else inst.price_to_ticks(price),
            stop_price=None if stop is None else inst.price_to_ticks(stop),
            tif=TimeInForce(tif),
            post_only=post_only,
            reduce_only=reduce_only,
            client_id=client_id,
            expire_ns=expire,
            ts=ts,
        )
        return self.v.place(order)

    def buy(self, oid: str, qty: str, price: str | None = None, **kw: object) -> list[Event]:
        return self.order(oid, "buy", qty, price, **kw)

    def sell(self, oid: str, qty: str, price: str | None = None, **kw: object) -> list[Event]:
        return self.order(oid, "sell", qty, price, **kw)

    def cancel(self, oid: str, ts: int = 0, account: str | None = None) -> list[Event]:
        return self.v.cancel(oid, ts, account)

    def amend(
        self,
        oid: str,
        price: str | None = None,
        qty: str | None = None,
        stop: str | None = None,
        ts: int = 0,
        account: str | None = None,
    ) -> list[Event]:
        inst = self.v.instruments[self.v.orders[oid].symbol] if oid in self.v.orders else self.v.instruments[BTC]
        return self.v.amend(
            oid,
            price=None if price is None else inst.price_to_ticks(price),
            qty=None if qty is None else inst.qty_to_lots(qty),
            stop_price=None if stop is None else inst.price_to_ticks(stop),
            ts=ts,
            account=account,
        )

    def trade(self, price: str, qty: str = "0.001", ts: int = 0, symbol: str = BTC) -> None:
        """Print one trade at `price` between two bystander accounts, which sets the last price."""
        self._n += 1
        maker, taker = f"_mk{self._n}", f"_tk{self._n}"
        placed = self.sell(maker, qty, price, account="mm1", symbol=symbol, ts=ts)
        assert kinds(placed) == ["accepted"], placed
        taken = self.buy(taker, qty, price, account="mm2", symbol=symbol, ts=ts, tif="IOC")
        inst = self.v.instruments[symbol]
        expected = (taker, maker, text(inst.price(inst.price_to_ticks(price))), text(inst.qty(inst.qty_to_lots(qty))))
        assert self.fills(taken) == [expected], taken

    # -- views -------------------------------------------------------------------------

    def fmt_fill(self, e: OrderFilled) -> tuple[str, str, str, str]:
        inst = self.v.instruments[e.symbol]
        return (e.taker.id, e.maker.id, text(inst.price(e.price)), text(inst.qty(e.qty)))

    def fills(self, events: list[Event]) -> list[tuple[str, str, str, str]]:
        """(taker id, maker id, price, qty) per fill, prices and quantities as plain decimals."""
        return [self.fmt_fill(e) for e in events if isinstance(e, OrderFilled)]

    def book(self, symbol: str = BTC) -> list[tuple[str, str, str, str]]:
        """Resting orders as (id, side, price, open qty): bids then asks, best first, then time."""
        inst = self.v.instruments[symbol]
        return [
            (o.id, o.side.value, text(inst.price(o.price)), text(inst.qty(o.open_qty)))
            for o in self.v.books[symbol].resting()
        ]

    def ids(self, symbol: str = BTC) -> list[str]:
        return [o.id for o in self.v.books[symbol].resting()]

    def best(self, symbol: str = BTC) -> tuple[str | None, str | None]:
        inst = self.v.instruments[symbol]
        book = self.v.books[symbol]
        bid, ask = book.best_bid(), book.best_ask()
        return (None if bid is None else text(inst.price(bid)), None if ask is None else text(inst.price(ask)))

    def acct(self, account: str = "a1") -> Account:
        return self.v.account(account)

    def pos(self, account: str = "a1", symbol: str = BTC) -> Position | None:
        """The account's position in `symbol`, None while it never had one."""
        return self.v.account(account).positions.get(symbol)

    def pos_qty(self, account: str = "a1", symbol: str = BTC) -> str:
        pos = self.pos(account, symbol)
        return text(self.v.instruments[symbol].qty(0 if pos is None else pos.qty))

    def open(self, oid: str) -> Order:
        return self.v.orders[oid]

    def reserved(self, account: str = "a1", ccy: str = "USD") -> int:
        return cash_field(self.acct(account), ccy, "reserved")

    def margin(self, account: str = "a1", ccy: str = "USD") -> int:
        return cash_field(self.acct(account), ccy, "margin")

    def balance(self, account: str = "a1", ccy: str = "USD") -> int:
        return cash_field(self.acct(account), ccy, "balance")

    def available(self, account: str = "a1", ccy: str = "USD") -> int:
        return self.balance(account, ccy) - self.reserved(account, ccy) - self.margin(account, ccy)


def cash_field(acct: Account, ccy: str, field: str) -> int:
    """balance / reserved / margin of one currency, whichever way the account stores them
    (per-currency wallets, or one dict per field)."""
    wallets = getattr(acct, "wallets", None)
    if wallets is not None:
        wallet = wallets.get(ccy)
        return 0 if wallet is None else getattr(wallet, field)
    store = getattr(acct, "balances" if field == "balance" else field)
    return store.get(ccy, 0)
