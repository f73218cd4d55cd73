"""Past-tense facts the venue emits. The event stream is the truth; state can be rebuilt from it.

Plain slotted classes with hand-written constructors rather than dataclasses: compiled, a
dataclass keeps the interpreted `__init__` that the dataclasses module generates, and the venue
creates one of these for every accepted order and every fill. Acyclic (they refer to orders, which
never refer back), so the garbage collector need not track them, and each class keeps one freed
instance to reuse.
"""

from typing import Final

from mypy_extensions import mypyc_attr

from tradsys.engine.order import Order


@mypyc_attr(acyclic=True)
class OrderEvent:
    """What happened to one order the venue holds, carrying the order itself (a fill carries two
    orders and a rejection none, so they stand alone)."""

    __slots__ = ("ts", "order")

    def __init__(self, ts: int, order: Order) -> None:
        self.ts = ts
        self.order = order


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderAccepted(OrderEvent):
    __slots__ = ()


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderRejected:
    __slots__ = ("ts", "order_id", "account", "reason", "message", "op")

    def __init__(self, ts: int, order_id: str, account: str, reason: str, message: str, op: str = "new") -> None:
        self.ts = ts
        self.order_id = order_id
        self.account = account
        self.reason = reason
        self.message = message
        self.op = op


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderFilled:
    """One match between a taker and a resting maker, at the maker's price."""

    __slots__ = (
        "ts", "trade_id", "symbol", "taker", "maker", "price", "qty", "taker_fee", "maker_fee", "taker_open", "maker_open",
    )

    def __init__(
        self, ts: int, trade_id: int, symbol: str, taker: Order, maker: Order, price: int, qty: int, taker_fee: int,
        maker_fee: int, taker_open: int, maker_open: int,
    ) -> None:
        self.ts, self.trade_id, self.symbol = ts, trade_id, symbol
        self.price, self.qty = price, qty
        self.taker, self.taker_fee, self.taker_open = taker, taker_fee, taker_open
        self.maker, self.maker_fee, self.maker_open = maker, maker_fee, maker_open
        """`*_open`: open quantities right after this match, as the orders themselves keep changing within a command."""


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderCancelled(OrderEvent):
    __slots__ = ("reason",)

    def __init__(self, ts: int, order: Order, reason: str) -> None:
        self.ts = ts
        self.order = order
        self.reason = reason


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderExpired(OrderEvent):
    __slots__ = ()


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderAmended(OrderEvent):
    __slots__ = ()


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderTriggered(OrderEvent):
    __slots__ = ()


Event = OrderAccepted | OrderRejected | OrderFilled | OrderCancelled | OrderExpired | OrderAmended | OrderTriggered

EVENT_KINDS: Final[dict[type, str]] = {
    OrderAccepted: "accepted", OrderRejected: "rejected", OrderFilled: "filled", OrderCancelled: "cancelled",
    OrderExpired: "expired", OrderAmended: "amended", OrderTriggered: "triggered",
}
"""Each event's one name, wherever it leaves the engine: `tradsys replay` output, the daemon's `orders` feed
(WebSocket, `tradsys tail`) and gRPC's `OrderEvent.Kind` (KIND_ + the name in capitals)."""
