"""The book against a plain FIFO-list model over long seeded streams.

Few prices and many orders per price, so that levels get deep, are taken from the front again
and again (the book rebuilds a level's dict after enough of that) and empty and come back (the
heaps' tops must follow). The property tests elsewhere run streams far too short for either.
"""

import random

import pytest

from tradsys.engine import Order, OrderBook, OrderType, SelfTradePrevention, Side

STP = SelfTradePrevention
PRICES = range(100, 106)


class Model:
    """Price -> resting orders, oldest first."""

    def __init__(self) -> None:
        self.levels: dict[str, dict[int, list[Order]]] = {"buy": {}, "sell": {}}

    def add(self, order: Order) -> None:
        self.levels[order.side.value].setdefault(order.price, []).append(order)

    def discard(self, order: Order) -> bool:
        queue = self.levels[order.side.value].get(order.price, [])
        if order not in queue:
            return False
        queue.remove(order)
        if not queue:
            del self.levels[order.side.value][order.price]
        return True

    def match(self, taker: Order, limit: int | None, stp: STP) -> tuple[list, list]:
        """Expected (maker id, price, qty) matches and self-trade cancels; applies them."""
        side = "sell" if taker.side is Side.BUY else "buy"
        levels = self.levels[side]
        remaining = taker.open_qty
        matches, cancelled = [], []
        for price in sorted(levels, reverse=side == "buy"):
            if limit is not None and (price > limit if side == "sell" else price < limit):
                break
            queue = levels[price]
            for maker in list(queue):
                if not remaining:
                    break
                if maker.account == taker.account and stp is STP.CANCEL_RESTING:
                    cancelled.append(maker.id)
                    queue.remove(maker)
                    continue
                take = min(maker.open_qty, remaining)
                matches.append((maker.id, price, take))
                remaining -= take
                if take == maker.open_qty:
                    queue.remove(maker)
            if not queue:
                del levels[price]
            if not remaining:
                break
        return matches, cancelled

    def resting(self) -> list[str]:
        out = [o.id for p in sorted(self.levels["buy"], reverse=True) for o in self.levels["buy"][p]]
        return out + [o.id for p in sorted(self.levels["sell"]) for o in self.levels["sell"][p]]

    def depth(self) -> tuple[list, list]:
        def side(name: str, reverse: bool) -> list:
            levels = self.levels[name]
            return [(p, sum(o.open_qty for o in levels[p]), len(levels[p])) for p in sorted(levels, reverse=reverse)]

        return side("buy", True), side("sell", False)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("stp", [STP.CANCEL_RESTING, STP.ALLOW])
def test_book_matches_a_fifo_model_on_deep_busy_levels(seed: int, stp: STP) -> None:
    rng = random.Random(seed)
    book, model = OrderBook("X"), Model()
    resting: list[Order] = []
    for n in range(2500):
        r = rng.random()
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        account = f"a{rng.randrange(8)}"
        if r < 0.6:
            best = book.best_ask() if side is Side.BUY else book.best_bid()
            price = rng.choice(PRICES)
            if best is not None and (price >= best if side is Side.BUY else price <= best):
                price = best - 1 if side is Side.BUY else best + 1
            order = Order(f"o{n}", account, "X", side, OrderType.LIMIT, rng.randint(1, 9), price=price)
            book.add(order)
            model.add(order)
            resting.append(order)
        elif r < 0.75 and resting:
            order = resting.pop(rng.randrange(len(resting)))
            assert book.discard(order) is model.discard(order)
        elif r < 0.8 and resting:
            order = rng.choice(resting)
            if book.contains(order) and order.open_qty > 1:
                book.reduce(order, order.open_qty - 1)
        else:
            limit = None if rng.random() < 0.2 else rng.choice(PRICES)
            taker = Order(f"t{n}", account, "X", side, OrderType.LIMIT, rng.randint(1, 40), price=limit)
            expected, expected_cancels = model.match(taker, limit, stp)
            matches, cancelled, stopped = book.match(taker, limit, stp)
            assert [(m.id, p, q) for m, p, q in matches] == expected
            assert [m.id for m, _, _ in cancelled] == expected_cancels
            assert stopped is False
            for maker, _, qty in matches:  # the caller's part: the makers' own open quantity
                maker.open_qty -= qty
            gone = {m.id for m, _, _ in cancelled} | {m.id for m, _, _ in matches if m.open_qty == 0}
            resting = [o for o in resting if o.id not in gone]
        assert [o.id for o in book.resting()] == model.resting()
        bids, asks = model.depth()
        assert book.depth(len(PRICES) + 2) == (bids, asks)
        assert book.best_bid() == (bids[0][0] if bids else None)
        assert book.best_ask() == (asks[0][0] if asks else None)
