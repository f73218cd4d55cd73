"""Positions with average price and realized PnL, exact in integer notional units (ticks x lots),
and how much of one a reduce-only order may trade."""

from typing import TYPE_CHECKING, Final

from mypy_extensions import i64, mypyc_attr

from tradsys.engine.enums import Side

if TYPE_CHECKING:
    from tradsys.engine.account import Wallet
    from tradsys.engine.order import Order

BUY: Final = Side.BUY
SMALL: Final = 1 << 16
LARGE: Final = 1 << 46


def product(large: int, small: int) -> int:
    """large * small, exactly. Compiled, a product with a negative factor or one of 2**30 or more
    (a short position's cost, a loss) takes mypyc's generic (slow) path; factors within
    these bounds multiply as 64-bit machine integers and cannot overflow them."""
    if -LARGE < large < LARGE and -SMALL < small < SMALL:
        return i64(large) * i64(small)
    return large * small


def magnitude(n: int) -> int:
    """abs(n): compiled, the builtin is a generic Python call on a boxed int."""
    return n if n >= 0 else -n


def reducible(qty: int, side: Side) -> int:
    """Lots an order on `side` can trade against a position of `qty` lots without adding exposure."""
    return max(0, -qty if side is BUY else qty)


def reduce_cap(maker: "Order", taker: "Order", pending: list[tuple["Order", int, int]]) -> int:
    """How much a resting reduce-only order may still fill, counting the earlier matches of the
    sweep under way (`pending`: maker, price, qty), which are not booked yet."""
    account = maker.account
    qty = maker.pos.qty
    for other, _, filled in pending:
        if other.account == account:
            qty += filled if other.side is BUY else -filled
        if taker.account == account:
            qty += filled if taker.side is BUY else -filled
    return reducible(qty, maker.side)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Position:
    """Signed quantity and its cost basis; realized PnL is booked when exposure is reduced.

    Closing part of a position releases a proportional share of the cost basis, rounded down;
    the remainder stays in the basis, so a full round trip realizes exactly what it made.
    """

    __slots__ = ("account", "symbol", "wallet", "qty", "cost", "realized", "fees", "open_buy", "open_sell")

    def __init__(self, account: str, symbol: str, wallet: "Wallet") -> None:
        self.account = account
        self.symbol = symbol
        self.wallet = wallet
        """The quote-currency wallet that this position's PnL, fees and margin settle in."""
        self.qty = 0
        self.cost = 0
        self.realized = 0
        self.fees = 0
        """Fees paid in cash units (negative for net rebates)."""
        self.open_buy = 0
        self.open_sell = 0
        """Lots in open orders, for position limits that count what could still fill."""

    def reduce(self, signed_qty: int, price: int) -> int:
        """Book a fill of `signed_qty` lots at `price` ticks against the position (it shrinks,
        closes or flips it); returns the realized PnL it adds. Fills that add to the position
        realize nothing: `settlement.settle` books those itself (qty and cost just add up)."""
        qty = self.qty
        if qty > 0:
            closing = qty if -signed_qty > qty else -signed_qty
            released = product(self.cost, closing) // qty
            pnl = closing * price - released
        else:
            closing = -qty if signed_qty > -qty else signed_qty
            released = product(self.cost, closing) // -qty
            pnl = -(closing * price) - released
        after = qty + signed_qty
        self.qty = after
        if after and (after > 0) != (qty > 0):
            self.cost = product(price, after)
        else:
            self.cost -= released
        self.realized += pnl
        return pnl

    def unrealized(self, mark: int) -> int:
        return self.qty * mark - self.cost
