"""The order as the venue tracks it: integer ticks and lots, mutable as it fills."""

from typing import TYPE_CHECKING, Final

from mypy_extensions import mypyc_attr

from tradsys.engine.enums import OrderStatus, OrderType, Side, TimeInForce

NEW: Final = OrderStatus.NEW

if TYPE_CHECKING:
    from tradsys.engine.account import Account
    from tradsys.engine.position import Position


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True, acyclic=True)
class Order:
    """A live or finished order. Slotted and hand-written: it is created on every command."""

    __slots__ = (
        "id", "account", "symbol", "side", "type", "tif", "price", "stop_price", "qty",
        "open_qty", "filled_qty", "filled_cost", "status", "post_only", "reduce_only",
        "client_id", "expire_ns", "created_ns", "updated_ns", "triggered", "seq", "hold_price", "acct", "pos",
    )
    acct: "Account"
    pos: "Position"
    """Set when the venue accepts the order (fills touch both); a rejected order has neither."""

    def __init__(
        self,
        id: str,
        account: str,
        symbol: str,
        side: Side,
        type: OrderType,
        qty: int,
        price: int | None = None,
        stop_price: int | None = None,
        tif: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        reduce_only: bool = False,
        client_id: str | None = None,
        expire_ns: int | None = None,
        ts: int = 0,
    ) -> None:
        self.id, self.client_id, self.account, self.symbol = id, client_id, account, symbol
        self.side, self.type, self.tif = side, type, tif
        self.price, self.stop_price, self.qty = price, stop_price, qty
        self.post_only, self.reduce_only, self.expire_ns = post_only, reduce_only, expire_ns
        self.created_ns = self.updated_ns = ts
        self.status, self.open_qty, self.filled_qty, self.filled_cost = NEW, qty, 0, 0
        self.triggered, self.seq, self.hold_price = False, 0, 0
        """`hold_price`: the price (ticks) at which cash is held back for each open lot while the order is
        open; 0: none. Ticks rather than cash: compiled, `hold_price * qty * cash_mult` stays in machine integers,
        where a product with an operand of 2**30 or more (a price in cash units) does not."""

    @property
    def is_open(self) -> bool:
        return self.status is OrderStatus.NEW or self.status is OrderStatus.PARTIALLY_FILLED

    def __repr__(self) -> str:
        return (
            f"Order({self.id!r}, {self.account!r}, {self.symbol}, {self.side}, {self.type}, "
            f"price={self.price}, qty={self.qty}, open={self.open_qty}, {self.status})"
        )


def new_order(
    id: str, account: str, symbol: str, side: Side, type: OrderType, qty: int, price: int | None,
    stop_price: int | None, tif: TimeInForce, post_only: bool, reduce_only: bool, client_id: str | None,
    expire_ns: int | None, ts: int,
) -> Order:
    """`Order(...)` with every argument given, for the edges that build one per command.

    Compiled, a call of the class from interpreted code parses its arguments as a tuple plus keywords;
    a call of this function takes them straight off the stack.
    """
    return Order(id, account, symbol, side, type, qty, price, stop_price, tif, post_only, reduce_only, client_id, expire_ns, ts)
