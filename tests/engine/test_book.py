"""The order book on its own: levels, best prices, priority, match and fill-or-kill checks.

Prices are integer ticks and quantities integer lots here; the book knows nothing else.
"""

import pytest

from tradsys.engine import Order, OrderBook, OrderType, SelfTradePrevention, Side

STP = SelfTradePrevention
_n = 0


def order(side: str, price: int | None, qty: int, account: str = "a", oid: str | None = None) -> Order:
    global _n
    _n += 1
    return Order(oid or f"o{_n}", account, "X", Side(side), OrderType.LIMIT, qty, price=price)


def book_with(*orders: Order) -> OrderBook:
    book = OrderBook("X")
    for o in orders:
        book.add(o)
    return book


def ids(orders: list[Order]) -> list[str]:
    return [o.id for o in orders]


def test_empty_book() -> None:
    book = OrderBook("X")
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert book.mid() is None
    assert book.depth(5) == ([], [])
    assert book.resting() == []
    assert not book.would_take(Side.BUY, 10**9)
    assert not book.would_take(Side.SELL, 1)


def test_best_prices_and_mid_rounded_down() -> None:
    book = book_with(order("buy", 99, 1), order("buy", 100, 1), order("sell", 103, 1), order("sell", 102, 1))
    assert book.best_bid() == 100
    assert book.best_ask() == 102
    assert book.mid() == 101
    book.add(order("sell", 101, 1))
    assert book.mid() == 100  # (100 + 101) // 2


def test_mid_needs_both_sides() -> None:
    assert book_with(order("buy", 100, 1)).mid() is None
    assert book_with(order("sell", 100, 1)).mid() is None


@pytest.mark.parametrize(
    ("side", "price", "takes"),
    [
        ("buy", 101, True),   # at the ask
        ("buy", 105, True),   # through the ask
        ("buy", 100, False),  # at the bid: joins it
        ("sell", 99, True),   # at the bid
        ("sell", 90, True),
        ("sell", 100, False),  # above the bid: joins the asks
    ],
)
def test_would_take(side: str, price: int, takes: bool) -> None:
    book = book_with(order("buy", 99, 1), order("sell", 101, 1))
    assert book.would_take(Side(side), price) is takes


def test_depth_aggregates_levels_best_first() -> None:
    book = book_with(
        order("buy", 100, 2), order("buy", 100, 3), order("buy", 98, 1), order("buy", 99, 4),
        order("sell", 103, 5), order("sell", 101, 1), order("sell", 101, 2),
    )
    bids, asks = book.depth(10)
    assert bids == [(100, 5, 2), (99, 4, 1), (98, 1, 1)]
    assert asks == [(101, 3, 2), (103, 5, 1)]
    assert book.depth(1) == ([(100, 5, 2)], [(101, 3, 2)])


def test_resting_is_bids_then_asks_best_price_then_time() -> None:
    b1, b2, b3 = order("buy", 99, 1, oid="b1"), order("buy", 100, 1, oid="b2"), order("buy", 99, 1, oid="b3")
    a1, a2, a3 = order("sell", 102, 1, oid="a1"), order("sell", 101, 1, oid="a2"), order("sell", 102, 1, oid="a3")
    book = book_with(b1, a1, b2, a2, b3, a3)
    assert ids(book.resting()) == ["b2", "b1", "b3", "a2", "a1", "a3"]


def test_remove_last_order_of_best_level_moves_best_price() -> None:
    top, below = order("buy", 100, 1), order("buy", 99, 1)
    book = book_with(top, below)
    book.remove(top)
    assert book.best_bid() == 99
    assert book.depth(5)[0] == [(99, 1, 1)]
    book.remove(below)
    assert book.best_bid() is None


def test_level_can_be_recreated_after_it_emptied() -> None:
    first = order("sell", 100, 1)
    book = book_with(first, order("sell", 105, 1))
    book.remove(first)
    assert book.best_ask() == 105
    again = order("sell", 100, 2)
    book.add(again)
    assert book.best_ask() == 100
    book.remove(again)
    assert book.best_ask() == 105
    assert book.depth(5)[1] == [(105, 1, 1)]


def test_contains_and_discard() -> None:
    resting, other = order("buy", 100, 1), order("buy", 100, 1)
    book = book_with(resting)
    assert book.contains(resting)
    assert not book.contains(other)
    assert book.discard(other) is False
    assert book.discard(resting) is True
    assert not book.contains(resting)
    assert book.discard(resting) is False


def test_reduce_keeps_time_priority_and_level_total() -> None:
    first, second = order("buy", 100, 5, oid="first"), order("buy", 100, 5, oid="second")
    book = book_with(first, second)
    book.reduce(first, 2)
    assert first.open_qty == 2
    assert ids(book.resting()) == ["first", "second"]
    assert book.depth(1)[0] == [(100, 7, 2)]


def test_match_price_then_time_priority_at_maker_prices() -> None:
    a = order("sell", 101, 2, oid="a")
    b = order("sell", 100, 1, oid="b")
    c = order("sell", 101, 3, oid="c")
    d = order("sell", 100, 1, oid="d")
    book = book_with(a, b, c, d)
    taker = order("buy", 105, 5, account="t")
    matches, stp_cancelled, stopped = book.match(taker, 105, STP.CANCEL_RESTING)
    assert [(m.id, p, q) for m, p, q in matches] == [("b", 100, 1), ("d", 100, 1), ("a", 101, 2), ("c", 101, 1)]
    assert stp_cancelled == [] and stopped is False
    # Fully filled makers left the book; the partly filled one stays with the level total reduced
    # (its own open_qty is the caller's to update).
    assert ids(book.resting()) == ["c"]
    assert book.depth(5)[1] == [(101, 2, 1)]


def test_match_stops_at_the_limit() -> None:
    book = book_with(order("sell", 100, 1, oid="a"), order("sell", 101, 1, oid="b"))
    matches, _, _ = book.match(order("buy", 100, 5, account="t"), 100, STP.CANCEL_RESTING)
    assert [(m.id, p, q) for m, p, q in matches] == [("a", 100, 1)]
    assert book.best_ask() == 101


def test_match_without_limit_sweeps_every_level() -> None:
    book = book_with(order("buy", 100, 1, oid="a"), order("buy", 90, 1, oid="b"), order("buy", 1, 1, oid="c"))
    matches, _, _ = book.match(order("sell", None, 10, account="t"), None, STP.CANCEL_RESTING)
    assert [(m.id, p, q) for m, p, q in matches] == [("a", 100, 1), ("b", 90, 1), ("c", 1, 1)]
    assert book.resting() == []


@pytest.mark.parametrize(
    ("stp", "matched", "cancelled", "stopped", "left"),
    [
        # own order "mine" sits between two others at the same price
        (STP.CANCEL_RESTING, ["x", "y"], ["mine"], False, []),
        (STP.CANCEL_TAKING, ["x"], [], True, ["mine", "y"]),
        (STP.CANCEL_BOTH, ["x"], ["mine"], True, ["y"]),
        (STP.ALLOW, ["x", "mine"], [], False, ["y"]),
    ],
)
def test_match_self_trade_prevention(stp, matched, cancelled, stopped, left) -> None:
    book = book_with(order("sell", 100, 1, oid="x"), order("sell", 100, 1, "me", oid="mine"), order("sell", 100, 1, oid="y"))
    matches, stp_cancelled, taker_stopped = book.match(order("buy", 100, 2, "me"), 100, stp)
    assert [m.id for m, _, _ in matches] == matched
    assert [(m.id, reason) for m, reason, _ in stp_cancelled] == [(oid, "self_trade") for oid in cancelled]
    assert taker_stopped is stopped
    assert ids(book.resting()) == left
    assert sum(o.open_qty for o in book.resting()) == (book.depth(1)[1][0][1] if left else 0)


@pytest.mark.parametrize(
    ("side", "limit", "qty", "fillable"),
    [
        ("buy", None, 6, True),
        ("buy", None, 7, False),
        ("buy", 101, 3, True),
        ("buy", 101, 4, False),
        ("buy", 99, 1, False),
        ("sell", 99, 2, True),
        ("sell", 99, 3, False),
    ],
)
def test_fillable(side: str, limit: int | None, qty: int, fillable: bool) -> None:
    book = book_with(
        order("sell", 100, 1), order("sell", 101, 2), order("sell", 105, 3), order("buy", 99, 2), order("buy", 98, 5),
    )
    before = [(o.id, o.open_qty) for o in book.resting()]
    assert (fills(book, order(side, limit, qty, "t"), STP.CANCEL_RESTING) >= qty) is fillable
    assert [(o.id, o.open_qty) for o in book.resting()] == before, "a dry run changes nothing"


def fills(book: OrderBook, taker: Order, stp: STP) -> int:
    """What a dry-run match would fill for `taker`: the fill-or-kill question."""
    matches, _, _ = book.match(taker, taker.price, stp, dry=True)
    return sum(qty for _, _, qty in matches)


def test_dry_run_does_not_count_own_orders_unless_allowed() -> None:
    book = book_with(order("sell", 100, 2, "me"), order("sell", 100, 1, "other"))
    assert fills(book, order("buy", 100, 2, "me"), STP.CANCEL_RESTING) == 1
    assert fills(book, order("buy", 100, 3, "me"), STP.ALLOW) == 3
    assert fills(book, order("buy", 100, 3, "me"), STP.CANCEL_TAKING) == 0


def test_heap_of_best_prices_stays_bounded_under_level_churn() -> None:
    """Levels created and emptied below the touch leave stale heap entries; they must not pile up."""
    book = book_with(order("buy", 100, 1, oid="top"))
    for i in range(5000):
        deep = order("buy", 50 + i % 7, 1, oid=f"d{i}")
        book.add(deep)
        book.remove(deep)
    assert len(book._bid_heap) <= 2 * len(book.bids) + 65
    assert book.best_bid() == 100


def test_recent_ids_remember_the_last_limit_and_forget_older() -> None:
    import pickle

    from tradsys.engine.recent import RecentIds

    ids = RecentIds(3)
    names = [f"id{i}" for i in range(20)]
    for k, name in enumerate(names):
        ids.add(name)
        assert all(n in ids for n in names[max(0, k - 2):k + 1]), "the last `limit` are always known"
        assert not any(n in ids for n in names[:max(0, k - 5)]), "nothing older than twice the limit"
        assert min(k + 1, 3) <= len(ids) <= 6
    ids.add("id18")
    assert sorted(ids) == sorted(set(ids)), "an id added again is counted once"
    again = pickle.loads(pickle.dumps(ids))
    assert sorted(again) == sorted(ids)
    again.add("x")
    ids.add("x")
    assert sorted(again) == sorted(ids), "a snapshot keeps the ids and their generation"
