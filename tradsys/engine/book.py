"""Limit order book with price-time priority.

Each price level keeps a FIFO queue plus an index of live entries: append, cancel, in-place
reduce and taking from the front are all O(1). Best prices come from a heap per side with lazy
deletion, which is cheaper than a sorted container on the add/cancel-heavy flow a venue sees.
"""

from collections import deque
from heapq import heappop, heappush
from collections.abc import Callable, Iterator
from itertools import count

from tradsys.engine.enums import SelfTradePrevention, Side
from tradsys.engine.order import Order

BUY = Side.BUY
ALLOW = SelfTradePrevention.ALLOW


class Level:
    """Orders at one price. `queue` is the time priority; `live` maps each resting order id to the
    token of its queue entry, so removal is O(1) and stale entries are skipped (and compacted)."""

    __slots__ = ("queue", "live", "qty")

    def __init__(self) -> None:
        self.queue: deque[tuple[int, Order]] = deque()
        self.live: dict[str, int] = {}
        self.qty = 0

    def orders(self) -> list[Order]:
        live = self.live
        return [o for token, o in self.queue if live.get(o.id) == token]


class OrderBook:
    __slots__ = ("symbol", "bids", "asks", "_bid_heap", "_ask_heap", "_tokens")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self._bid_heap: list[int] = []
        self._ask_heap: list[int] = []
        self._tokens = count(1)

    def best_bid(self) -> int | None:
        heap, levels = self._bid_heap, self.bids
        while heap:
            price = -heap[0]
            if price in levels:
                return price
            heappop(heap)
        return None

    def best_ask(self) -> int | None:
        heap, levels = self._ask_heap, self.asks
        while heap:
            price = heap[0]
            if price in levels:
                return price
            heappop(heap)
        return None

    def mid(self) -> int | None:
        """Mid price in ticks, rounded down; None unless both sides are quoted."""
        bid = self.best_bid()
        ask = self.best_ask()
        if bid is None or ask is None:
            return None
        return (bid + ask) // 2

    def would_take(self, side: Side, price: int) -> bool:
        if side is BUY:
            ask = self.best_ask()
            return ask is not None and price >= ask
        bid = self.best_bid()
        return bid is not None and price <= bid

    def add(self, order: Order) -> None:
        """Rest an order at the back of its price level."""
        price = order.price
        if order.side is BUY:
            level = self.bids.get(price)
            if level is None:
                level = self.bids[price] = Level()
                heappush(self._bid_heap, -price)
        else:
            level = self.asks.get(price)
            if level is None:
                level = self.asks[price] = Level()
                heappush(self._ask_heap, price)
        token = next(self._tokens)
        level.live[order.id] = token
        level.queue.append((token, order))
        level.qty += order.open_qty

    def remove(self, order: Order) -> None:
        levels = self.bids if order.side is BUY else self.asks
        level = levels[order.price]
        live = level.live
        del live[order.id]
        level.qty -= order.open_qty
        if not live:
            del levels[order.price]
        elif len(level.queue) > 2 * len(live) + 16:
            level.queue = deque(e for e in level.queue if live.get(e[1].id) == e[0])

    def contains(self, order: Order) -> bool:
        """False for orders that do not rest here, e.g. a taker being matched or a pending stop."""
        level = (self.bids if order.side is BUY else self.asks).get(order.price)
        return level is not None and order.id in level.live

    def discard(self, order: Order) -> bool:
        if not self.contains(order):
            return False
        self.remove(order)
        return True

    def reduce(self, order: Order, open_qty: int) -> None:
        """Lower a resting order's open quantity in place: it keeps its time priority."""
        levels = self.bids if order.side is BUY else self.asks
        levels[order.price].qty -= order.open_qty - open_qty
        order.open_qty = open_qty

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
        levels = self.asks if taker.side is BUY else self.bids
        for price in self._prices(taker.side, limit, dry):
            level = levels[price]
            live = level.live
            consumed = partial = 0
            stop = False
            for token, maker in level.queue:
                if live.get(maker.id) != token:
                    consumed += 1
                    continue
                if maker.account == account and stp is not ALLOW:
                    if stp is SelfTradePrevention.CANCEL_TAKING:
                        stop = True
                        break
                    consumed += 1
                    cancelled.append((maker, "self_trade", len(matches)))
                    if stp is SelfTradePrevention.CANCEL_BOTH:
                        stop = True
                        break
                    continue
                open_qty = maker.open_qty
                take = open_qty
                if maker.reduce_only and reduce_cap is not None:
                    take = min(open_qty, reduce_cap(maker, taker, matches))
                    if take <= 0:
                        consumed += 1
                        cancelled.append((maker, "reduce_only", len(matches)))
                        continue
                if take <= remaining:
                    consumed += 1
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
                level.qty -= partial
                self._consume(levels, price, level, consumed)
            if stop:
                return matches, cancelled, True
            if not remaining:
                break
        return matches, cancelled, False

    def _prices(self, side: Side, limit: int | None, dry: bool) -> Iterator[int]:
        """Opposite-side prices, best first, within `limit`. Live matching walks the heap (levels
        it empties are gone by the next step); a dry run cannot empty them, so it sorts."""
        if side is BUY:
            levels, heap, sign = self.asks, self._ask_heap, 1
        else:
            levels, heap, sign = self.bids, self._bid_heap, -1
        if dry:
            for price in sorted(levels, reverse=sign == -1):
                if limit is not None and (price > limit if sign == 1 else price < limit):
                    return
                yield price
            return
        while heap:
            price = heap[0] * sign
            if price not in levels:
                heappop(heap)
                continue
            if limit is not None and (price > limit if sign == 1 else price < limit):
                return
            yield price

    @staticmethod
    def _consume(levels: dict[int, Level], price: int, level: Level, consumed: int) -> None:
        """Drop the first `consumed` queue entries: dead, matched in full, or cancelled."""
        queue, live = level.queue, level.live
        for _ in range(consumed):
            token, maker = queue.popleft()
            if live.get(maker.id) == token:
                del live[maker.id]
                level.qty -= maker.open_qty
        if not live:
            del levels[price]

    def depth(self, n: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Top `n` levels per side as (price, qty, order count), best first."""
        bids = [(p, self.bids[p].qty, len(self.bids[p].live)) for p in sorted(self.bids, reverse=True)[:n]]
        asks = [(p, self.asks[p].qty, len(self.asks[p].live)) for p in sorted(self.asks)[:n]]
        return bids, asks

    def resting(self) -> list[Order]:
        """Every resting order, bids then asks, each best price first, then time priority."""
        out = [o for p in sorted(self.bids, reverse=True) for o in self.bids[p].orders()]
        out += [o for p in sorted(self.asks) for o in self.asks[p].orders()]
        return out
