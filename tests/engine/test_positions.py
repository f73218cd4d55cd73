"""Positions, PnL, fees, balances and cash holds, with hand-computed values.

BTC-USD: tick 0.01, lot 0.001, so one tick x one lot is 0.00001 USD = 1000 cash units.
Position.cost / realized / unrealized are in ticks x lots; x 1000 gives cash units.
"""

from decimal import Decimal

import pytest

from tradsys.engine import OrderFilled

from helpers import BTC, DAY, SECOND, Sim, rejection, usd

MULT = 1000  # BTC-USD cash units per tick x lot
START = usd("1000000")


def cash(ticks_lots: int) -> int:
    return ticks_lots * MULT


def fee_config(maker: str, taker: str) -> dict:
    return {"maker_fee_bps": Decimal(maker), "taker_fee_bps": Decimal(taker)}


def test_new_account_starts_with_one_million_usd() -> None:
    sim = Sim()
    assert sim.balance("fresh") == usd("1000000")
    assert sim.reserved("fresh") == 0 and sim.margin("fresh") == 0


def test_long_round_trip_with_default_fees() -> None:
    sim = Sim()  # maker 1 bp, taker 5 bp
    sim.sell("m", "2", "100.00", account="m")
    sim.buy("open", "2", "100.00", account="a1")     # taker on 200 USD: 0.10
    sim.sell("close", "2", "103.00", account="a1")   # rests: maker on 206 USD: 0.0206
    sim.buy("lift", "2", "103.00", account="t")
    pos = sim.pos("a1")
    assert (pos.qty, pos.cost) == (0, 0)
    assert cash(pos.realized) == usd("6")
    assert pos.fees == usd("0.1206")
    assert sim.balance("a1") == START + usd("6") - usd("0.1206")
    assert sim.margin("a1") == 0 and sim.reserved("a1") == 0
    # the counterparties paid their own fees: m maker on 200, t taker on 206
    assert sim.balance("m") == START - usd("0.02")
    assert sim.balance("t") == START - usd("0.103")


def test_short_then_flip_long_with_maker_rebate() -> None:
    sim = Sim(**fee_config("-1", "5"))
    # 1. a1 sells 2 @ 100 as maker: short 2, rebate 1 bp of 200 = 0.02
    sim.sell("s", "2", "100.00", account="a1")
    sim.buy("b", "2", "100.00", account="b1")
    pos = sim.pos("a1")
    assert (pos.qty, cash(pos.cost)) == (-2000, -usd("200"))
    assert pos.realized == 0
    assert cash(pos.unrealized(10000)) == 0
    assert sim.margin("a1") == usd("200") and sim.reserved("a1") == 0
    assert sim.balance("a1") == START + usd("0.02")

    # 2. a1 buys 0.5 @ 98 as taker: closes 0.5 of the short for (100 - 98) x 0.5 = 1; fee 5 bp of 49
    sim.sell("c", "0.5", "98.00", account="c1")
    sim.buy("cover", "0.5", "98.00", account="a1")
    assert (pos.qty, cash(pos.cost)) == (-1500, -usd("150"))
    assert cash(pos.realized) == usd("1")
    assert cash(pos.unrealized(9800)) == usd("3")  # (100 - 98) x 1.5
    assert sim.margin("a1") == usd("150")

    # 3. a1 buys 2.5 @ 96 as taker: closes 1.5 for (100 - 96) x 1.5 = 6, opens long 1 @ 96; fee 5 bp of 240
    sim.sell("d", "2.5", "96.00", account="d1")
    sim.buy("flip", "2.5", "96.00", account="a1")
    assert (pos.qty, cash(pos.cost)) == (1000, usd("96"))
    assert cash(pos.realized) == usd("7")
    assert sim.margin("a1") == usd("96")

    # 4. the market trades at 99: long 1 from 96 is up 3
    sim.trade("99.00")
    mark = sim.v.reference_price(BTC)
    assert mark == 9900
    assert cash(pos.unrealized(mark)) == usd("3")

    fees = usd("-0.02") + usd("0.0245") + usd("0.12")
    assert pos.fees == fees == usd("0.1245")
    assert sim.balance("a1") == START + usd("7") - fees == usd("1000006.8755")
    assert sim.balance("a1") + cash(pos.unrealized(mark)) == usd("1000009.8755")
    assert sim.reserved("a1") == 0

    # the makers got their rebates
    assert sim.balance("c1") == START + usd("0.0049")
    assert sim.balance("d1") == START + usd("0.024")
    assert sim.balance("b1") == START - usd("0.10")
    assert sum(p.qty for a in sim.v.accounts.values() for p in a.positions.values()) == 0


@pytest.mark.parametrize(
    ("maker_bps", "taker_bps", "maker_fee", "taker_fee"),
    [
        # notional 1.01 x 0.001 = 0.00101 USD = 101,000 units
        ("1", "5", 11, 51),       # 10.1 -> 11, 50.5 -> 51: rounded up
        ("-1", "5", -10, 51),     # rebate -10.1 -> -10: the venue pays the smaller amount
        ("0", "0", 0, 0),
        ("-2.5", "2.5", -25, 26),
        ("0.01", "0.01", 1, 1),   # 0.101 -> 1
    ],
)
def test_fees_are_rounded_in_the_venues_favour(maker_bps, taker_bps, maker_fee, taker_fee) -> None:
    sim = Sim(**fee_config(maker_bps, taker_bps))
    sim.sell("m", "0.001", "1.01", account="maker")
    events = sim.buy("t", "0.001", "1.01", account="taker")
    fill = next(e for e in events if isinstance(e, OrderFilled))
    assert (fill.maker_fee, fill.taker_fee) == (maker_fee, taker_fee)
    assert sim.balance("maker") == START - maker_fee
    assert sim.balance("taker") == START - taker_fee
    assert sim.pos("maker").fees == maker_fee and sim.pos("taker").fees == taker_fee


def test_partial_close_releases_cost_rounded_down_and_round_trip_is_exact() -> None:
    sim = Sim(**fee_config("0", "0"))
    sim.sell("m1", "0.001", "100.00", account="m")
    sim.sell("m2", "0.001", "100.01", account="m")
    sim.sell("m3", "0.001", "100.01", account="m")
    sim.buy("open", "0.003", "100.01", account="a1")
    pos = sim.pos("a1")
    assert (pos.qty, pos.cost) == (3, 10000 + 10001 + 10001)
    sim.buy("bid", "0.003", "100.02", account="b")
    sim.sell("c1", "0.001", "100.02", account="a1")
    # releases 30002 * 1 // 3 = 10000 of the basis: realized 10002 - 10000 = 2
    assert (pos.qty, pos.cost, pos.realized) == (2, 20002, 2)
    sim.sell("c2", "0.002", "100.02", account="a1")
    # releases the remaining 20002: realized 20004 - 20002 = 2, total 3 x 10002 - 30002 = 4
    assert (pos.qty, pos.cost, pos.realized) == (0, 0, 4)
    assert sim.balance("a1") == START + cash(4)


def test_unrealized_sign_for_long_and_short() -> None:
    sim = Sim()
    sim.sell("m", "1", "100.00", account="short")
    sim.buy("t", "1", "100.00", account="long")
    assert cash(sim.pos("long").unrealized(10100)) == usd("1")
    assert cash(sim.pos("short").unrealized(10100)) == -usd("1")
    assert cash(sim.pos("long").unrealized(9950)) == -usd("0.5")
    assert cash(sim.pos("short").unrealized(9950)) == usd("0.5")


def test_several_symbols_keep_separate_positions() -> None:
    sim = Sim(**fee_config("0", "0"))
    sim.sell("m1", "1", "100.00", account="m", symbol="BTC-USD")
    sim.sell("m2", "3", "10.000", account="m", symbol="SOL-USD")
    sim.buy("t1", "1", "100.00", account="a1", symbol="BTC-USD")
    sim.buy("t2", "3", "10.000", account="a1", symbol="SOL-USD")
    assert sim.pos_qty("a1", "BTC-USD") == "1"
    assert sim.pos_qty("a1", "SOL-USD") == "3"
    # margin is the cost basis of both: 100 + 30
    assert sim.margin("a1") == usd("130")


# -- holds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "qty", "price", "held"), [("buy", "1", "100.00", "100"), ("sell", "2", "50.00", "100")])
def test_open_order_holds_its_notional(side: str, qty: str, price: str, held: str) -> None:
    sim = Sim()
    sim.order("o", side, qty, price)
    assert sim.reserved() == usd(held)
    assert sim.available() == START - usd(held)
    assert sim.balance() == START


def test_cancel_releases_the_hold() -> None:
    sim = Sim()
    sim.buy("o", "1", "100.00")
    sim.buy("o2", "0.5", "90.00")
    assert sim.reserved() == usd("145")
    sim.cancel("o")
    assert sim.reserved() == usd("45")
    sim.cancel("o2")
    assert sim.reserved() == 0
    assert sim.available() == START


def test_partial_fill_moves_hold_to_margin() -> None:
    sim = Sim()
    sim.buy("o", "1", "100.00", account="a1")
    sim.sell("s", "0.4", "100.00", account="a2")
    assert sim.reserved("a1") == usd("60")
    assert sim.margin("a1") == usd("40")
    assert sim.balance("a1") == START - usd("0.004")  # maker 1 bp of 40
    assert sim.reserved("a2") == 0 and sim.margin("a2") == usd("40")
    assert sim.balance("a2") == START - usd("0.02")  # taker 5 bp of 40
    sim.cancel("o")
    assert sim.reserved("a1") == 0 and sim.margin("a1") == usd("40")


def test_taker_price_improvement_releases_the_whole_hold() -> None:
    sim = Sim()
    sim.sell("m", "1", "100.00", account="m")
    sim.buy("t", "1", "101.00", account="a1")
    assert sim.reserved("a1") == 0
    assert sim.margin("a1") == usd("100")
    assert sim.balance("a1") == START - usd("0.05")


def test_ioc_remainder_and_expiry_release_holds() -> None:
    sim = Sim()
    sim.sell("m", "1", "100.00", account="m")
    sim.buy("ioc", "3", "100.00", account="a1", tif="IOC")
    assert sim.reserved("a1") == 0
    sim.buy("gtd", "1", "99.00", account="a1", tif="GTD", expire=5 * SECOND)
    assert sim.reserved("a1") == usd("99")
    sim.v.advance(5 * SECOND)
    assert sim.reserved("a1") == 0


def test_market_order_holds_at_band_edge_and_releases_it() -> None:
    sim = Sim()
    sim.sell("m", "2", "100.50", account="m")
    sim.trade("100.00")
    events = sim.buy("mkt", "1", account="a1")
    order = events[0].order
    assert order.hold_price == 10500  # 100.00 + 5 %
    assert sim.fills(events) == [("mkt", "m", "100.5", "1")]
    assert sim.reserved("a1") == 0 and sim.margin("a1") == usd("100.5")


def test_amend_moves_the_hold() -> None:
    sim = Sim()
    sim.buy("o", "1", "100.00")
    sim.amend("o", price="102.00")
    assert sim.reserved() == usd("102")
    sim.amend("o", qty="0.5")
    assert sim.reserved() == usd("51")
    sim.amend("o", qty="2", price="101.00")
    assert sim.reserved() == usd("202")


def test_reduce_only_holds_nothing_and_closing_releases_margin() -> None:
    sim = Sim(**fee_config("0", "0"))
    sim.sell("m", "1", "100.00", account="m")
    sim.buy("open", "1", "100.00", account="a1")
    assert sim.margin("a1") == usd("100")
    sim.sell("close", "1", "100.00", account="a1", reduce_only=True)
    assert sim.reserved("a1") == 0
    sim.buy("lift", "1", "100.00", account="t")
    assert sim.margin("a1") == 0 and sim.balance("a1") == START


def test_insufficient_balance_counts_holds_and_margin() -> None:
    sim = Sim(initial_balances={"USD": Decimal(1000)}, **fee_config("0", "0"))
    assert rejection(sim.buy("all", "10", "100.00", account="a1")) is None  # exactly 1000
    assert rejection(sim.buy("more", "0.001", "100.00", account="a1")) == "insufficient_balance"
    sim.cancel("all")
    assert rejection(sim.buy("again", "0.001", "100.00", account="a1")) is None
    sim.cancel("again")
    # margin of a filled position ties up cash just the same
    sim.sell("m", "10", "100.00", account="m")
    sim.buy("fill", "10", "100.00", account="a1")
    assert sim.margin("a1") == usd("1000")
    assert rejection(sim.buy("more2", "0.001", "99.00", account="a1")) == "insufficient_balance"
    sim.v.deposit("a1", "USD", "0.1")
    assert sim.balance("a1") == usd("1000.1")
    assert rejection(sim.buy("more3", "0.001", "99.00", account="a1")) is None


def test_daily_realized_tracks_cash_pnl_per_utc_day() -> None:
    sim = Sim(**fee_config("0", "0"))
    sim.sell("m", "1", "100.00", account="m", ts=DAY + 1)
    sim.buy("open", "1", "100.00", account="a1", ts=DAY + 2)
    sim.buy("bid", "1", "99.00", account="m", ts=DAY + 3)
    sim.sell("close", "1", "99.00", account="a1", ts=DAY + 4)
    acct = sim.acct("a1")
    assert acct.day_realized == -usd("1")
