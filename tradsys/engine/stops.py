"""Stop orders of one symbol, waiting for the last trade to reach their stop price."""

from heapq import heappop, heappush
from typing import Final

from mypy_extensions import mypyc_attr

from tradsys.engine.enums import OrderStatus, Side
from tradsys.engine.order import Order

BUY: Final = Side.BUY
NEW: Final = OrderStatus.NEW
PARTIAL: Final = OrderStatus.PARTIALLY_FILLED


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class StopOrders:
    """Two heaps with the nearest stop on top: buy stops trigger when the last price rises to
    theirs, sell stops when it falls to theirs. An order amended or finished while it waits leaves
    its old entry behind, dropped when it comes to the top (its seq no longer matches)."""

    __slots__ = ("buys", "sells")

    def __init__(self) -> None:
        self.buys: list[tuple[int, int, Order]] = []
        self.sells: list[tuple[int, int, Order]] = []

    def arm(self, order: Order, last: int | None) -> bool:
        """Wait for the order's stop price; False (and nothing kept) when the last trade `last` is
        already through it: the caller triggers the order at once."""
        stop = order.stop_price
        assert stop is not None, "only stop orders are armed"
        if last is not None and (last >= stop if order.side is BUY else last <= stop):
            return False
        self.wait(order)
        return True

    def wait(self, order: Order) -> None:
        """Wait for the stop price whatever the last trade, e.g. again after a halt held it back."""
        stop = order.stop_price
        assert stop is not None, "only stop orders wait"
        if order.side is BUY:
            heappush(self.buys, (stop, order.seq, order))
        else:
            heappush(self.sells, (-stop, order.seq, order))

    def pending(self) -> bool:
        return bool(self.buys) or bool(self.sells)

    def pop_reached(self, last: int) -> Order | None:
        """The next open order whose stop the last trade `last` reached, no longer waiting; None if none."""
        buys, sells = self.buys, self.sells
        while True:
            if buys and buys[0][0] <= last:
                _, seq, order = heappop(buys)
            elif sells and -sells[0][0] >= last:
                _, seq, order = heappop(sells)
            else:
                return None
            if seq == order.seq and not order.triggered and (order.status is NEW or order.status is PARTIAL):
                return order
