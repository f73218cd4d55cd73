"""Limit order book with price-time priority.

Each price level is an insertion-ordered dict of its resting orders by id: the dict's order is
the time priority, and append, cancel, in-place reduce and taking from the front are all O(1).
Best prices come from a heap per side with lazy deletion, which is cheaper than a sorted
container on the add/cancel-heavy flow a venue sees; a heap's top is always a live price
(emptying the best level pops it at once), so reading the best price is one index.
"""

from heapq import heapify, heappop, heappush
from collections.abc import Callable, Iterator
from typing import Any, Final

from mypy_extensions import mypyc_attr

from tradsys.engine.enums import SelfTradePrevention, Side
from tradsys.engine.order import Order

BUY: Final = Side.BUY
ALLOW: Final = SelfTradePrevention.ALLOW
CANCEL_TAKING: Final = SelfTradePrevention.CANCEL_TAKING
CANCEL_BOTH: Final = SelfTradePrevention.CANCEL_BOTH


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Level:
    """Orders at one price: `live` maps each resting order's id to it, oldest first."""

    __slots__ = ("live", "qty", "taken")

    def __init__(self) -> None:
        self.live: dict[str, Order] = {}
        self.qty = 0
        self.taken = 0
        """Orders matching took from the front since `live` was built (see `OrderBook._consume`)."""

    def orders(self) -> list[Order]:
        return list(self.live.values())


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class OrderBook:
    __slots__ = ("symbol", "bids", "asks", "_bid_heap", "_ask_heap")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self._bid_heap: list[int] = []
        """Negated bid prices; may hold prices of emptied levels below the top."""
        self._ask_heap: list[int] = []

    def best_bid(self) -> int | None:
        heap = self._bid_heap
        return -heap[0] if heap else None

    def best_ask(self) -> int | None:
        heap = self._ask_heap
        return heap[0] if heap else None

    def mid(self) -> int | None:
        """Mid price in ticks, rounded down; None unless both sides are quoted."""
        bids, asks = self._bid_heap, self._ask_heap
        if not bids or not asks:
            return None
        return (asks[0] - bids[0]) // 2

    def would_take(self, side: Side, price: int) -> bool:
        if side is BUY:
            heap = self._ask_heap
            return price >= heap[0] if heap else False
        heap = self._bid_heap
        return price <= -heap[0] if heap else False

    def add(self, order: Order) -> None:
        """Rest an order at the back of its price level."""
        key: Any = order.price  # the order's own price object: compiled, an int key is boxed anew per dict call
        assert key is not None, "only priced orders rest"
        if order.side is BUY:
            level = self.bids.get(key)
            if level is None:
                level = self.bids[key] = Level()
                heap = self._bid_heap
                price: int = key
                heappush(heap, -price)
                if len(heap) > 2 * len(self.bids) + 64:
                    self._bid_heap = _compact([-p for p in self.bids])
        else:
            level = self.asks.get(key)
            if level is None:
                level = self.asks[key] = Level()
                heap = self._ask_heap
                heappush(heap, key)
                if len(heap) > 2 * len(self.asks) + 64:
                    self._ask_heap = _compact(list(self.asks))
        level.live[order.id] = order
        level.qty += order.open_qty

    def remove(self, order: Order) -> None:
        """`discard` for an order that must rest here."""
        if not self.discard(order):
            raise KeyError(order.id)

    def contains(self, order: Order) -> bool:
        """False for orders that do not rest here, e.g. a taker being matched or a pending stop."""
        price = order.price
        if price is None:
            return False
        level = (self.bids if order.side is BUY else self.asks).get(price)
        return level is not None and level.live.get(order.id) is order

    def discard(self, order: Order) -> bool:
        """Take a resting order out of the book; False (and nothing changes) if it does not rest here."""
        buy = order.side is BUY
        levels = self.bids if buy else self.asks
        price: Any = order.price  # not unboxed: see `add`
        if price is None:
            return False
        level = levels.get(price)
        if level is None:
            return False
        live = level.live
        oid = order.id
        if live.get(oid) is not order:
            return False
        del live[oid]
        if live:
            level.qty -= order.open_qty
        else:
            del levels[price]
            self._pop_emptied(buy)
        return True

    def reduce(self, order: Order, open_qty: int) -> None:
        """Lower a resting order's open quantity in place: it keeps its time priority."""
        levels = self.bids if order.side is BUY else self.asks
        assert order.price is not None, "only priced orders rest"
        levels[order.price].qty -= order.open_qty - open_qty
        order.open_qty = open_qty

    def _pop_emptied(self, bids: bool) -> None:
        """Restore the heap's invariant after a level went: pop tops whose level is gone."""
        heap, levels = (self._bid_heap, self.bids) if bids else (self._ask_heap, self.asks)
        while heap and (-heap[0] if bids else heap[0]) not in levels:
            heappop(heap)

    def match(
        self,
        taker: Order,
        limit: int | None,
        stp: SelfTradePrevention,
        reduce_cap: Callable[[Order, Order, list[tuple[Order, int, int]]], int] | None = None,
        dry: bool = False,
    ) -> tuple[list[tuple[Order, int, int]], list[tuple[Order, str, int]], bool]:
        """Take liquidity for `taker` up to `limit` (None: any price) in price-time order.

        Returns the matches as (maker, price, qty); the makers to cancel as (maker, reason, n), n
        being how many matches came before it, with reason "self_trade" or "reduce_only" (a
        reduce-only maker that `reduce_cap` says may fill less than it shows fills what it may and
        leaves); and whether self-trade prevention stops the taker.
        Matched and cancelled makers leave the book and level totals are kept; the caller owns
        every order's own fields (open quantity, status) and all accounting. `dry` computes the
        same answer and changes nothing: fill-or-kill asks it first.
        """
        matches: list[tuple[Order, int, int]] = []
        cancelled: list[tuple[Order, str, int]] = []
        remaining = taker.open_qty
        account = taker.account
        takes_asks = taker.side is BUY
        levels = self.asks if takes_asks else self.bids
        for price in self._prices(takes_asks, limit, dry):
            level = levels[price]
            live = level.live
            gone: list[Order] = []
            partial = 0
            stop = False
            for maker in live.values():
                if maker.account == account and stp is not ALLOW:
                    if stp is CANCEL_TAKING:
                        stop = True
                        break
                    gone.append(maker)
                    cancelled.append((maker, "self_trade", len(matches)))
                    if stp is CANCEL_BOTH:
                        stop = True
                        break
                    continue
                open_qty = maker.open_qty
                take = open_qty
                if maker.reduce_only and reduce_cap is not None:
                    take = min(open_qty, reduce_cap(maker, taker, matches))
                    if take <= 0:
                        gone.append(maker)
                        cancelled.append((maker, "reduce_only", len(matches)))
                        continue
                if take <= remaining:
                    gone.append(maker)
                    matches.append((maker, price, take))
                    remaining -= take
                    if take < open_qty:
                        cancelled.append((maker, "reduce_only", len(matches)))
                    if not remaining:
                        break
                else:
                    matches.append((maker, price, remaining))
                    partial, remaining = remaining, 0
                    break
            if not dry:
                if gone:
                    self._consume(levels, price, level, gone, takes_asks)
                level.qty -= partial
            if stop:
                return matches, cancelled, True
            if not remaining:
                break
        return matches, cancelled, False

    def _prices(self, asks: bool, limit: int | None, dry: bool) -> Iterator[int]:
        """Opposite-side prices, best first, within `limit`. Live matching reads the heap's top (a
        level it empties is popped before the next step); a dry run cannot empty levels, so it sorts."""
        if asks:
            levels, heap = self.asks, self._ask_heap
        else:
            levels, heap = self.bids, self._bid_heap
        if dry:
            for price in sorted(levels, reverse=not asks):
                if limit is not None and (price > limit if asks else price < limit):
                    return
                yield price
            return
        while heap:
            price = heap[0] if asks else -heap[0]  # compiled, a product with -1 would leave machine ints
            if limit is not None and (price > limit if asks else price < limit):
                return
            yield price

    def _consume(self, levels: dict[int, Level], price: int, level: Level, gone: list[Order], asks: bool) -> None:
        """Drop the orders a match took from the front of a level (matched in full, or cancelled).

        A dict reuses the slots of deleted keys only when it grows, and iterating it steps over them
        from the front, so a busy level whose front keeps being taken gets slower to match; once
        matching took more than an eighth of it (plus some slack), it is rebuilt compact.
        """
        live = level.live
        if len(gone) == len(live):
            del levels[price]
            self._pop_emptied(not asks)
            return
        for maker in gone:
            del live[maker.id]
            level.qty -= maker.open_qty
        level.taken += len(gone)
        if level.taken > 32 + len(live) // 8:
            level.live = {**live}  # merged into a new dict, sized once; a copy (dict(live)) would keep the holes
            level.taken = 0

    def depth(self, n: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Top `n` levels per side as (price, qty, order count), best first."""
        bids = [(p, self.bids[p].qty, len(self.bids[p].live)) for p in sorted(self.bids, reverse=True)[:n]]
        asks = [(p, self.asks[p].qty, len(self.asks[p].live)) for p in sorted(self.asks)[:n]]
        return bids, asks

    def resting(self) -> list[Order]:
        """Every resting order, bids then asks, each best price first, then time priority."""
        out = [o for p in sorted(self.bids, reverse=True) for o in self.bids[p].live.values()]
        out += [o for p in sorted(self.asks) for o in self.asks[p].live.values()]
        return out


def _compact(keys: list[int]) -> list[int]:
    """A heap of exactly the live levels. Levels emptied below the top leave stale heap entries
    (lazy deletion); rebuilding once they outnumber the live ones keeps the heap bounded."""
    heapify(keys)
    return keys
