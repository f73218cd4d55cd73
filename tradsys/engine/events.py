"""Past-tense facts the venue emits. The event stream is the truth; state can be rebuilt from it."""

from dataclasses import dataclass

from tradsys.engine.order import Order


@dataclass(slots=True)
class OrderAccepted:
    ts: int
    order: Order


@dataclass(slots=True)
class OrderRejected:
    ts: int
    order_id: str
    account: str
    reason: str
    message: str
    op: str = "new"


@dataclass(slots=True)
class OrderFilled:
    """One match between a taker and a resting maker, at the maker's price."""

    ts: int
    trade_id: int
    symbol: str
    taker: Order
    maker: Order
    price: int
    qty: int
    taker_fee: int
    maker_fee: int
    taker_open: int
    """Open quantities right after this match: the orders themselves keep changing within a command."""
    maker_open: int


@dataclass(slots=True)
class OrderCancelled:
    ts: int
    order: Order
    reason: str


@dataclass(slots=True)
class OrderExpired:
    ts: int
    order: Order


@dataclass(slots=True)
class OrderAmended:
    ts: int
    order: Order


@dataclass(slots=True)
class OrderTriggered:
    ts: int
    order: Order


Event = OrderAccepted | OrderRejected | OrderFilled | OrderCancelled | OrderExpired | OrderAmended | OrderTriggered
