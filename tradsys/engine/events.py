"""Past-tense facts the venue emits. The event stream is the truth; state can be rebuilt from it.

Plain slotted classes with hand-written constructors rather than dataclasses: compiled, a
dataclass keeps the interpreted `__init__` that the dataclasses module generates, and the venue
creates one of these for every accepted order and every fill. Acyclic (they refer to orders, which
never refer back), so the garbage collector need not track them, and each class keeps one freed
instance to reuse.
"""

from mypy_extensions import mypyc_attr

from tradsys.engine.order import Order


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderAccepted:
    __slots__ = ("ts", "order")

    def __init__(self, ts: int, order: Order) -> None:
        self.ts = ts
        self.order = order


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
        self.ts = ts
        self.trade_id = trade_id
        self.symbol = symbol
        self.taker = taker
        self.maker = maker
        self.price = price
        self.qty = qty
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self.taker_open = taker_open
        """Open quantities right after this match: the orders themselves keep changing within a command."""
        self.maker_open = maker_open


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderCancelled:
    __slots__ = ("ts", "order", "reason")

    def __init__(self, ts: int, order: Order, reason: str) -> None:
        self.ts = ts
        self.order = order
        self.reason = reason


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderExpired:
    __slots__ = ("ts", "order")

    def __init__(self, ts: int, order: Order) -> None:
        self.ts = ts
        self.order = order


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderAmended:
    __slots__ = ("ts", "order")

    def __init__(self, ts: int, order: Order) -> None:
        self.ts = ts
        self.order = order


@mypyc_attr(acyclic=True, free_list_len=1)
class OrderTriggered:
    __slots__ = ("ts", "order")

    def __init__(self, ts: int, order: Order) -> None:
        self.ts = ts
        self.order = order


Event = OrderAccepted | OrderRejected | OrderFilled | OrderCancelled | OrderExpired | OrderAmended | OrderTriggered
