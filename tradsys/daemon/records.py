"""Engine objects as plain records with decimal strings: what the store, gRPC and WebSocket carry.

Built on the engine thread, so readers on other threads see a consistent, immutable copy. The
order row (a tuple in the orders table's column order) is the one conversion; the dict record,
the stored row and the wire message all come from it.
"""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tradsys.engine import Instrument, Order, OrderFilled, Venue
from tradsys.engine.commands import fmt
from tradsys.engine.instrument import from_cash

ORDER_FIELDS = (
    "id", "client_id", "account", "symbol", "side", "type", "tif", "price", "stop_price", "qty", "filled_qty",
    "open_qty", "avg_price", "status", "post_only", "reduce_only", "reason", "expire_ns", "created_ns", "updated_ns",
)


def scaler(unit: Decimal) -> Callable[[int], str]:
    """A function n -> text of n * unit, identical to `commands.fmt(n * unit)` but in integers and string
    slicing: no Decimal is built for each price and size the daemon publishes."""
    sign, digits, exp = unit.as_tuple()
    coef = int("".join(map(str, digits))) * (-1 if sign else 1)
    if exp >= 0:
        mult = coef * 10**exp
        return lambda n: str(n * mult)
    places = -exp

    def text(n: int) -> str:
        n *= coef
        neg = n < 0
        s = str(-n if neg else n)
        if len(s) <= places:
            s = "0" * (places + 1 - len(s)) + s
        whole, frac = s[:-places], s[-places:].rstrip("0")
        out = f"{whole}.{frac}" if frac else whole
        return "-" + out if neg and out != "0" else out

    return text


MEMO_CAP = 4096
"""Texts memoised per formatter (two per instrument). The price wanders and sizes are jittered, so a
cap that is only reached slowly is memory growing for hours; this one is reached soon after the start
of trading, and from then on each formatter's memory stays flat."""


def _cached(fn: Callable[[int], str], cap: int = MEMO_CAP) -> Callable[[int], str]:
    """Prices and sizes repeat a lot (levels, round lots), but the price drifts: memoise the recent
    ones, starting over once `cap` are held, so the cache follows the market within a fixed size."""
    cache: dict[int, str] = {}
    get = cache.get

    def text(n: int) -> str:
        out = get(n)
        if out is None:
            out = fn(n)
            if len(cache) >= cap:
                cache.clear()
            cache[n] = out
        return out

    return text


class Units:
    """Per-instrument formatters: the same text as `fmt(inst.price(n))`, without Decimal arithmetic, for
    the records built on the engine thread."""

    __slots__ = ("price", "qty", "tick", "quote")

    def __init__(self, tick: Decimal, lot: Decimal, quote: str) -> None:
        self.price = _cached(scaler(tick))
        self.qty = _cached(scaler(lot))
        self.tick = tick
        self.quote = quote

    def avg(self, cost: int, qty: int) -> str:
        """Average fill price: exact when it is a whole number of ticks, else 28 significant digits."""
        whole, rest = divmod(cost, qty)
        return self.price(whole) if not rest else fmt(Decimal(cost) / qty * self.tick)


CASH = scaler(Decimal("1e-8"))


_UNITS: dict[str, tuple[Instrument, "Units"]] = {}


def units(inst: Instrument) -> Units:
    """The instrument's formatters, by symbol: hashing the Instrument itself hashes every field.
    Another instrument under the same symbol (a test's own venue) gets formatters of its own."""
    found = _UNITS.get(inst.symbol)
    if found is None or (found[0] is not inst and found[0] != inst):
        found = _UNITS[inst.symbol] = (inst, Units(inst.tick_size, inst.lot_size, inst.quote))
    return found[1]


def order_row(u: Units, o: Order, reason: str | None) -> tuple:
    """An order's state in ORDER_FIELDS order."""
    filled = o.filled_qty
    return (
        # `_value_`: the plain str behind a StrEnum member, without the `.value` property's cost
        o.id, o.client_id, o.account, o.symbol, o.side._value_, o.type._value_, o.tif._value_,
        None if o.price is None else u.price(o.price),
        None if o.stop_price is None else u.price(o.stop_price),
        u.qty(o.qty), u.qty(filled), u.qty(o.open_qty),
        u.avg(o.filled_cost, filled) if filled else None,
        o.status._value_, o.post_only, o.reduce_only, reason, o.expire_ns, o.created_ns, o.updated_ns,
    )


def order_record(venue: Venue, order: Order, reason: str = "") -> dict[str, Any]:
    record = dict(zip(ORDER_FIELDS, order_row(units(venue.instruments[order.symbol]), order, reason)))
    record["triggered"] = order.triggered
    return record


def fill_records(venue: Venue, fill: OrderFilled) -> tuple[dict[str, Any], dict[str, Any]]:
    """The taker's and the maker's side of one match."""
    inst = venue.instruments[fill.symbol]
    price, qty = fmt(inst.price(fill.price)), fmt(inst.qty(fill.qty))

    def side(order: Order, fee: int, liquidity: str) -> dict[str, Any]:
        return {
            "trade_id": fill.trade_id,
            "order_id": order.id,
            "account": order.account,
            "symbol": fill.symbol,
            "side": order.side.value,
            "price": price,
            "qty": qty,
            "fee": fmt(from_cash(fee)),
            "fee_currency": inst.quote,
            "liquidity": liquidity,
            "taker_order_id": fill.taker.id,
            "maker_order_id": fill.maker.id,
            "ts": fill.ts,
        }

    return side(fill.taker, fill.taker_fee, "taker"), side(fill.maker, fill.maker_fee, "maker")


def trade_record(venue: Venue, fill: OrderFilled) -> dict[str, Any]:
    """The public view of a match: no accounts or order ids."""
    inst = venue.instruments[fill.symbol]
    return {
        "trade_id": fill.trade_id,
        "symbol": fill.symbol,
        "price": fmt(inst.price(fill.price)),
        "qty": fmt(inst.qty(fill.qty)),
        "taker_side": fill.taker.side.value,
        "ts": fill.ts,
    }


def position_records(venue: Venue, account: str | None = None) -> list[dict[str, Any]]:
    out = []
    for acct_id, acct in sorted(venue.accounts.items()):
        if account is not None and acct_id != account:
            continue
        for symbol, pos in sorted(acct.positions.items()):
            if pos.qty == 0 and pos.realized == 0 and pos.fees == 0:
                continue
            inst = venue.instruments[symbol]
            mark = venue.reference_price(symbol)
            out.append({
                "account": acct_id,
                "symbol": symbol,
                "qty": fmt(inst.qty(pos.qty)),
                "avg_price": fmt(Decimal(pos.cost) / pos.qty * inst.tick_size) if pos.qty else None,
                "realized_pnl": fmt(from_cash(pos.realized * inst.cash_mult)),
                "unrealized_pnl": fmt(from_cash(pos.unrealized(mark) * inst.cash_mult)) if mark is not None else "0",
                "fees": fmt(from_cash(pos.fees)),
                "mark_price": None if mark is None else fmt(inst.price(mark)),
            })
    return out
