"""Matching through the venue: price-time priority, maker prices, partial fills, sweeps."""

import pytest

from tradsys.engine import OrderFilled, OrderStatus

from helpers import BTC, ETH, SOL, Sim, kinds


def test_resting_order_does_not_trade_when_not_crossing() -> None:
    sim = Sim()
    assert kinds(sim.buy("b", "1", "99.99", account="a1")) == ["accepted"]
    assert kinds(sim.sell("s", "1", "100.00", account="a2")) == ["accepted"]
    assert sim.best() == ("99.99", "100")
    assert sim.book() == [("b", "buy", "99.99", "1"), ("s", "sell", "100", "1")]


def test_fill_at_the_makers_price_not_the_takers() -> None:
    sim = Sim()
    sim.sell("ask", "1", "100.00", account="maker")
    events = sim.buy("bid", "1", "104.50", account="taker")
    assert kinds(events) == ["accepted", "filled"]
    assert sim.fills(events) == [("bid", "ask", "100", "1")]
    assert sim.v.last[BTC] == 10000


def test_fill_at_makers_price_for_sell_takers() -> None:
    sim = Sim()
    sim.buy("bid", "2", "100.00", account="maker")
    events = sim.sell("ask", "2", "96.00", account="taker")
    assert sim.fills(events) == [("ask", "bid", "100", "2")]


def test_price_priority_across_levels_beats_time() -> None:
    sim = Sim()
    sim.sell("early-worse", "1", "101.00", account="m1")
    sim.sell("late-better", "1", "100.00", account="m2")
    events = sim.buy("t", "1", "101.00", account="t")
    assert sim.fills(events) == [("t", "late-better", "100", "1")]
    assert sim.ids() == ["early-worse"]


def test_time_priority_within_a_level() -> None:
    sim = Sim()
    for name in ("m1", "m2", "m3"):
        sim.buy(name, "1", "100.00", account=name)
    events = sim.sell("t", "2.5", "100.00", account="t")
    assert sim.fills(events) == [("t", "m1", "100", "1"), ("t", "m2", "100", "1"), ("t", "m3", "100", "0.5")]
    # the partly filled order keeps its place at the front of the level
    sim.buy("m4", "1", "100.00", account="m4")
    assert sim.book() == [("m3", "buy", "100", "0.5"), ("m4", "buy", "100", "1")]
    events = sim.sell("t2", "0.5", "100.00", account="t")
    assert sim.fills(events) == [("t2", "m3", "100", "0.5")]


def test_taker_sweeps_several_levels_best_first_then_rests_at_its_limit() -> None:
    sim = Sim()
    sim.sell("a102", "1", "102.00", account="m1")
    sim.sell("a100", "0.5", "100.00", account="m1")
    sim.sell("a101a", "0.3", "101.00", account="m2")
    sim.sell("a101b", "0.2", "101.00", account="m3")
    sim.sell("a103", "1", "103.00", account="m2")
    events = sim.buy("t", "2", "102.00", account="t")
    assert sim.fills(events) == [
        ("t", "a100", "100", "0.5"),
        ("t", "a101a", "101", "0.3"),
        ("t", "a101b", "101", "0.2"),
        ("t", "a102", "102", "1"),
    ]
    # 2 - (0.5 + 0.3 + 0.2 + 1) = 0: nothing left, so nothing rests and 103 is the best ask
    assert events[0].order.status is OrderStatus.FILLED
    assert sim.book() == [("a103", "sell", "103", "1")]
    assert sim.v.last[BTC] == 10200


def test_taker_remainder_rests_after_sweep() -> None:
    sim = Sim()
    sim.sell("a100", "1", "100.00", account="m")
    sim.sell("a101", "1", "101.00", account="m")
    sim.sell("a103", "1", "103.00", account="m")
    events = sim.buy("t", "3", "102.00", account="t")
    assert sim.fills(events) == [("t", "a100", "100", "1"), ("t", "a101", "101", "1")]
    assert sim.book() == [("t", "buy", "102", "1"), ("a103", "sell", "103", "1")]
    order = sim.open("t")
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert (order.qty, order.filled_qty, order.open_qty) == (3000, 2000, 1000)
    assert order.filled_cost == 100_00 * 1000 + 101_00 * 1000  # ticks x lots


def test_partial_fill_of_the_maker() -> None:
    sim = Sim()
    sim.sell("m", "5", "100.00", account="m")
    events = sim.buy("t", "2", "100.00", account="t")
    assert sim.fills(events) == [("t", "m", "100", "2")]
    maker = sim.open("m")
    assert maker.status is OrderStatus.PARTIALLY_FILLED
    assert (maker.filled_qty, maker.open_qty) == (2000, 3000)
    taker = events[0].order
    assert taker.status is OrderStatus.FILLED
    assert "t" not in sim.v.orders
    assert sim.book() == [("m", "sell", "100", "3")]
    assert sim.v.books[BTC].depth(1)[1] == [(10000, 3000, 1)]


def test_fill_event_carries_open_quantities_after_each_match_and_increasing_trade_ids() -> None:
    sim = Sim()
    sim.sell("m1", "1", "100.00", account="m")
    sim.sell("m2", "2", "100.01", account="m")
    events = sim.buy("t", "2.5", "100.01", account="t")
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.price, f.qty, f.taker_open, f.maker_open) for f in fills] == [
        (10000, 1000, 1500, 0),
        (10001, 1500, 0, 500),
    ]
    assert fills[1].trade_id == fills[0].trade_id + 1
    assert fills[0].symbol == BTC


def test_symbols_have_separate_books() -> None:
    sim = Sim()
    sim.sell("btc", "1", "100.00", account="m", symbol=BTC)
    sim.sell("sol", "1", "100.000", account="m", symbol=SOL)
    events = sim.buy("eth", "1", "100.00", account="t", symbol=ETH)
    assert sim.fills(events) == []
    assert sim.ids(BTC) == ["btc"] and sim.ids(SOL) == ["sol"] and sim.ids(ETH) == ["eth"]


def test_sol_ticks_and_lots() -> None:
    sim = Sim()
    sim.sell("m", "1.25", "20.125", account="m", symbol=SOL)
    events = sim.buy("t", "0.5", "20.130", account="t", symbol=SOL)
    assert sim.fills(events) == [("t", "m", "20.125", "0.5")]
    assert sim.book(SOL) == [("m", "sell", "20.125", "0.75")]


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_book_is_never_left_crossed(side: str) -> None:
    sim = Sim()
    sim.buy("b1", "1", "99.00", account="m")
    sim.buy("b2", "1", "98.00", account="m")
    sim.sell("s1", "1", "101.00", account="m")
    sim.sell("s2", "1", "102.00", account="m")
    price = "101.50" if side == "buy" else "98.50"
    sim.order("t", side, "5", price, account="t")
    bid, ask = sim.v.books[BTC].best_bid(), sim.v.books[BTC].best_ask()
    assert bid < ask
    assert sim.best() == (("101.5", "102") if side == "buy" else ("98", "98.5"))


def test_reference_price_is_last_trade_else_mid() -> None:
    sim = Sim()
    assert sim.v.reference_price(BTC) is None
    sim.buy("b", "1", "99.00", account="m")
    assert sim.v.reference_price(BTC) is None
    sim.sell("s", "1", "101.01", account="m")
    assert sim.v.reference_price(BTC) == 10000  # (9900 + 10101) // 2
    sim.buy("t", "0.5", "101.01", account="t")
    assert sim.v.reference_price(BTC) == 10101
