"""Pre-trade risk: every refusal reason, limit scopes, circuit breaker, halts, kill switch."""

from decimal import Decimal

import pytest

from tradsys.engine import DEFAULT_INSTRUMENTS, Instrument, Order, OrderType, Rejected, Side, Venue

from helpers import BTC, DAY, ETH, SECOND, Sim, cancels, kinds, rejection, usd

BTC_INST = next(i for i in DEFAULT_INSTRUMENTS if i.symbol == BTC)
SOL_INST = next(i for i in DEFAULT_INSTRUMENTS if i.symbol == "SOL-USD")


# -- edge conversion -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inst", "price", "ticks"),
    [(BTC_INST, "100.01", 10001), (BTC_INST, "100", 10000), (BTC_INST, "0.01", 1), (SOL_INST, "20.125", 20125)],
)
def test_price_to_ticks(inst: Instrument, price: str, ticks: int) -> None:
    assert inst.price_to_ticks(price) == ticks


@pytest.mark.parametrize(
    ("inst", "qty", "lots"),
    [(BTC_INST, "0.5", 500), (BTC_INST, "1", 1000), (BTC_INST, "0.001", 1), (SOL_INST, "1.25", 125)],
)
def test_qty_to_lots(inst: Instrument, qty: str, lots: int) -> None:
    assert inst.qty_to_lots(qty) == lots


@pytest.mark.parametrize(
    ("convert", "value", "reason"),
    [
        ("price", "100.001", "price_precision"),
        ("price", "0", "invalid_price"),
        ("price", "-1", "invalid_price"),
        ("price", "abc", "invalid_price"),
        ("price", "NaN", "invalid_price"),
        ("price", "Infinity", "invalid_price"),
        ("price", 100.5, "invalid_price"),  # floats are not exact
        ("qty", "0.0001", "qty_precision"),
        ("qty", "0", "invalid_qty"),
        ("qty", "-0.001", "invalid_qty"),
        ("qty", None, "invalid_qty"),
    ],
)
def test_edge_conversion_refusals(convert: str, value: object, reason: str) -> None:
    method = BTC_INST.price_to_ticks if convert == "price" else BTC_INST.qty_to_lots
    with pytest.raises(Rejected) as info:
        method(value)
    assert info.value.reason == reason


# -- order shape -------------------------------------------------------------------------------------


def raw(oid: str = "o", account: str = "a1", symbol: str = BTC, qty: int = 1000, price: int | None = 10000, **kw) -> Order:
    return Order(oid, account, symbol, Side.BUY, OrderType.LIMIT, qty, price=price, **kw)


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (raw(qty=0), "invalid_qty"),
        (raw(qty=-5), "invalid_qty"),
        (raw(price=0), "invalid_price"),
        (raw(price=None), "invalid_price"),
        (raw(symbol="DOGE-USD"), "unknown_symbol"),
        (raw(qty=10**9 + 1), "max_qty"),
    ],
)
def test_invalid_orders(order: Order, reason: str) -> None:
    assert rejection(Venue().place(order)) == reason


def test_min_qty() -> None:
    inst = Instrument("XYZ-USD", "XYZ", "USD", Decimal("0.01"), Decimal("0.1"), min_qty=10, max_qty=100)
    sim = Sim(Venue([inst]))
    assert rejection(sim.buy("small", "0.9", "5.00", symbol="XYZ-USD")) == "min_qty"
    assert rejection(sim.buy("ok", "1", "5.00", symbol="XYZ-USD")) is None
    assert rejection(sim.buy("top", "10", "5.00", symbol="XYZ-USD")) is None
    assert rejection(sim.buy("big", "10.1", "5.00", symbol="XYZ-USD")) == "max_qty"


def test_duplicate_ids() -> None:
    sim = Sim()
    sim.buy("o1", "1", "100.00", account="a1", client_id="c")
    assert rejection(sim.buy("o1", "1", "100.00", account="a2")) == "duplicate_order_id"
    assert rejection(sim.buy("o2", "1", "100.00", account="a1", client_id="c")) == "duplicate_client_id"


# -- notional, balance, position ----------------------------------------------------------------------


def test_max_notional_default_one_million() -> None:
    sim = Sim(initial_balances={"USD": Decimal(2_000_000)})
    assert rejection(sim.buy("at", "1000", "1000.00")) is None  # exactly 1,000,000
    assert rejection(sim.buy("over", "1000.001", "1000.00")) == "max_notional"


def test_insufficient_balance() -> None:
    sim = Sim()
    assert rejection(sim.buy("at", "1000", "1000.00")) is None
    assert rejection(sim.sell("more", "0.001", "2000.00")) == "insufficient_balance"


def test_max_position_counts_open_orders_on_each_side() -> None:
    sim = Sim()
    sim.v.set_limit("max_position", "1", symbol=BTC)
    assert rejection(sim.buy("b1", "0.6", "99.00")) is None
    assert rejection(sim.buy("b2", "0.5", "99.00")) == "max_position"  # 0.6 + 0.5 > 1
    assert rejection(sim.buy("b3", "0.4", "99.00")) is None  # = 1
    assert rejection(sim.sell("s1", "1", "101.00")) is None  # sells count on their own side
    assert rejection(sim.sell("s2", "0.001", "101.00")) == "max_position"


def test_max_position_counts_the_filled_position() -> None:
    sim = Sim()
    sim.v.set_limit("max_position", "1", account="a1")
    sim.sell("m", "0.7", "100.00", account="m")
    sim.buy("fill", "0.7", "100.00", account="a1")
    assert rejection(sim.buy("more", "0.301", "99.00")) == "max_position"
    assert rejection(sim.buy("fits", "0.3", "99.00")) is None
    # selling out of a long can go as far as short 1: 0.7 + 1
    assert rejection(sim.sell("s", "1.701", "101.00")) == "max_position"
    assert rejection(sim.sell("s2", "1.7", "101.00")) is None


def test_reduce_only_is_exempt_from_max_position() -> None:
    sim = Sim()
    sim.sell("m", "1", "100.00", account="m")
    sim.buy("fill", "1", "100.00", account="a1")
    sim.v.set_limit("max_position", "0.5")
    assert rejection(sim.sell("ro", "1", "101.00", reduce_only=True)) is None


@pytest.mark.parametrize(
    ("balance", "limit", "qty", "reason"),
    [
        # a sell stop at 98.00 holds 98.00 - 5 % = 93.10 per BTC, as it did when it was placed
        ("1000", None, "100", "insufficient_balance"),  # 9,310 USD > 1,000
        ("100000000", ("max_position", "1"), "2", "max_position"),
        ("100000000", None, "20000", "max_notional"),  # 1,862,000 USD > 1,000,000
    ],
)
def test_amend_raising_a_stop_market_qty_is_risk_checked(balance, limit, qty, reason) -> None:
    """A pending stop-market order has no limit price: an amend that grows it is checked, like a new
    one, at the edge of the band around its stop (once it skipped notional, position and balance)."""
    sim = Sim(initial_balances={"USD": Decimal(balance)})
    if limit:
        sim.v.set_limit(*limit)
    sim.trade("100.00")
    assert rejection(sim.sell("stop", "1", account="a1", stop="98.00")) is None
    events = sim.amend("stop", qty=qty)
    assert kinds(events) == ["rejected"] and rejection(events) == reason
    assert events[0].op == "amend"
    assert sim.open("stop").open_qty == 1000


def test_new_stop_market_order_is_risk_checked_at_its_band_edge() -> None:
    sim = Sim(initial_balances={"USD": Decimal(1000)})
    sim.trade("100.00")
    # 93.10 per BTC: 10.742 BTC need 1,000.0802 USD, 10.741 BTC 999.9871 USD
    assert rejection(sim.sell("big", "10.742", account="a1", stop="98.00")) == "insufficient_balance"
    assert rejection(sim.sell("fits", "10.741", account="a1", stop="98.00")) is None
    assert sim.reserved("a1") == usd("999.9871")


# -- price band --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "price", "reason"),
    [
        ("buy", "105.00", None),
        ("buy", "105.01", "price_band"),
        ("sell", "105.01", "price_band"),
        ("buy", "95.00", None),
        ("sell", "94.99", "price_band"),
        ("buy", "94.99", "price_band"),
    ],
)
def test_price_band_around_last_trade(side: str, price: str, reason: str | None) -> None:
    sim = Sim()
    sim.trade("100.00")
    assert rejection(sim.order("o", side, "0.1", price)) == reason


def test_price_band_around_mid_without_trades() -> None:
    sim = Sim()
    sim.buy("bid", "1", "99.00", account="m")
    assert rejection(sim.buy("far", "1", "50.00")) is None  # one side only: no reference
    sim.sell("ask", "1", "101.00", account="m")  # mid = 100.00
    assert rejection(sim.buy("in", "1", "95.00")) is None
    assert rejection(sim.buy("out", "1", "94.99")) == "price_band"


def test_price_band_of_stop_limit_is_around_its_stop() -> None:
    sim = Sim()
    sim.trade("100.00")
    assert rejection(sim.buy("s1", "1", "126.00", stop="120.00")) is None  # 5 % of 120 = 6
    assert rejection(sim.buy("s2", "1", "126.01", stop="120.00")) == "price_band"


def test_price_band_on_amend() -> None:
    sim = Sim()
    sim.trade("100.00")
    sim.buy("b", "1", "99.00")
    events = sim.amend("b", price="94.00")
    assert (events[0].reason, events[0].op) == ("price_band", "amend")
    assert sim.open("b").price == 9900


def test_price_band_can_be_widened_or_lifted() -> None:
    sim = Sim()
    sim.trade("100.00")
    sim.v.set_limit("price_band_pct", "20", account="a1")
    assert rejection(sim.buy("wide", "1", "81.00", account="a1")) is None
    assert rejection(sim.buy("narrow", "1", "81.00", account="a2")) == "price_band"
    sim.v.set_limit("price_band_pct", None, account="a2")
    assert rejection(sim.buy("none", "1", "1.00", account="a2")) is None


# -- rate limit ---------------------------------------------------------------------------------------


def test_rate_limit_per_account_per_engine_second() -> None:
    sim = Sim()
    sim.v.set_limit("max_orders_per_second", "3")
    t = 5 * SECOND
    for i in range(3):
        assert rejection(sim.buy(f"o{i}", "0.1", "99.00", ts=t + i)) is None
    assert rejection(sim.buy("o3", "0.1", "99.00", ts=t + SECOND - 1)) == "rate_limit"
    assert rejection(sim.buy("other", "0.1", "99.00", account="a2", ts=t + SECOND - 1)) is None
    assert rejection(sim.buy("o4", "0.1", "99.00", ts=t + SECOND)) is None


def test_rate_limit_counts_amends_that_reprice() -> None:
    sim = Sim()
    sim.v.set_limit("max_orders_per_second", "2")
    sim.buy("o", "1", "99.00", ts=SECOND)
    assert kinds(sim.amend("o", price="98.00", ts=SECOND)) == ["amended"]
    events = sim.amend("o", price="97.00", ts=SECOND)
    assert (events[0].reason, events[0].op) == ("rate_limit", "amend")


def test_rate_limit_of_zero_refuses_every_order() -> None:
    """The first order of each engine second is compared with the limit too: a limit of 0 lets no
    order through."""
    sim = Sim()
    sim.v.set_limit("max_orders_per_second", "0")
    assert rejection(sim.buy("o", "1", "99.00", ts=SECOND)) == "rate_limit"


def test_check_is_a_dry_run() -> None:
    sim = Sim()
    sim.v.set_limit("max_orders_per_second", "1")
    for _ in range(3):
        sim.v.check(raw("o", price=9900))
    assert rejection(sim.v.place(raw("o", price=9900))) is None
    with pytest.raises(Rejected) as info:
        sim.v.check(raw("o2", price=9900))
    assert info.value.reason == "rate_limit"
    assert list(sim.v.orders) == ["o"]


# -- daily loss ----------------------------------------------------------------------------------------


def lose_20_usd(sim: Sim, ts: int) -> None:
    """a1 buys 20 @ 100, sells 10 @ 98: realized -20 USD, long 10 left."""
    sim.sell("m-ask", "20", "100.00", account="m", ts=ts)
    sim.buy("open", "20", "100.00", account="a1", ts=ts)
    sim.buy("m-bid", "10", "98.00", account="m", ts=ts)
    sim.sell("close", "10", "98.00", account="a1", ts=ts)
    assert sim.pos("a1").qty == 10_000


@pytest.mark.parametrize(("limit", "blocked"), [("15", True), ("20", True), ("20.01", False)])
def test_daily_loss_limit(limit: str, blocked: bool) -> None:
    sim = Sim(maker_fee_bps=Decimal(0), taker_fee_bps=Decimal(0))
    sim.v.set_limit("daily_loss_limit", limit)
    t = 3 * DAY + SECOND
    lose_20_usd(sim, t)
    assert rejection(sim.buy("next", "0.1", "97.00", ts=t + 1)) == ("daily_loss_limit" if blocked else None)
    assert rejection(sim.buy("other", "0.1", "97.00", account="a2", ts=t + 1)) is None


def test_daily_loss_limit_allows_reduce_only_and_resets_next_day() -> None:
    sim = Sim(maker_fee_bps=Decimal(0), taker_fee_bps=Decimal(0))
    sim.v.set_limit("daily_loss_limit", "10")
    t = 3 * DAY + SECOND
    lose_20_usd(sim, t)
    assert rejection(sim.buy("next", "0.1", "97.00", ts=t + 1)) == "daily_loss_limit"
    assert rejection(sim.sell("ro", "1", "99.00", ts=t + 1, reduce_only=True)) is None
    assert rejection(sim.buy("tomorrow", "0.1", "97.00", ts=4 * DAY)) is None


def test_daily_loss_limit_also_stops_amends_that_add_risk() -> None:
    """The daily loss limit refuses an amend that adds lots, as it refuses a new order (the amend
    path once skipped it); size reductions still pass."""
    sim = Sim(maker_fee_bps=Decimal(0), taker_fee_bps=Decimal(0))
    sim.v.set_limit("daily_loss_limit", "10")
    t = 3 * DAY + SECOND
    sim.buy("resting", "1", "96.00", ts=t)
    lose_20_usd(sim, t)
    assert rejection(sim.buy("next", "0.1", "97.00", ts=t + 1)) == "daily_loss_limit"
    assert rejection(sim.amend("resting", qty="5", ts=t + 1)) == "daily_loss_limit"
    assert kinds(sim.amend("resting", qty="0.5", ts=t + 1)) == ["amended"]  # reductions still pass


# -- limit scopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "symbol", "limit"),
    [("a1", BTC, "4000"), ("a1", ETH, "3000"), ("a2", BTC, "2000"), ("a2", ETH, "1000")],
)
def test_limit_scopes_most_specific_wins(account: str, symbol: str, limit: str) -> None:
    sim = Sim()
    v = sim.v
    v.set_limit("max_order_notional", "1000")
    v.set_limit("max_order_notional", "2000", symbol=BTC)
    v.set_limit("max_order_notional", "3000", account="a1")
    v.set_limit("max_order_notional", "4000", account="a1", symbol=BTC)
    qty = str(Decimal(limit) / 100)  # at 100.00 a unit costs 100
    assert rejection(sim.buy("at", qty, "100.00", account=account, symbol=symbol)) is None
    over = str(Decimal(limit) / 100 + Decimal("0.001"))
    assert rejection(sim.buy("over", over, "100.00", account=account, symbol=symbol)) == "max_notional"
    assert v.limits.get("max_order_notional", account, symbol) == Decimal(limit)


def test_limit_default_removes_an_override_and_none_lifts_a_limit() -> None:
    v = Venue()
    v.set_limit("max_order_notional", "10", account="a1")
    assert v.limits.get("max_order_notional", "a1", BTC) == 10
    v.set_limit("max_order_notional", "default", account="a1")
    assert v.limits.get("max_order_notional", "a1", BTC) == 1_000_000
    v.set_limit("max_order_notional", "none", account="a1")
    assert v.limits.get("max_order_notional", "a1", BTC) is None
    sim = Sim(v)
    assert rejection(sim.buy("big", "1000.001", "1000.00", account="a1")) == "insufficient_balance"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [("no_such_limit", "1", "unknown_limit"), ("max_position", "-1", "invalid_limit"), ("breaker_window_s", None, "invalid_limit")],
)
def test_bad_limits(key: str, value: object, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        Venue().set_limit(key, value)
    assert info.value.reason == reason


def test_limit_on_unknown_symbol() -> None:
    with pytest.raises(Rejected) as info:
        Venue().set_limit("max_position", "1", symbol="DOGE-USD")
    assert info.value.reason == "unknown_symbol"


# -- risk off --------------------------------------------------------------------------------------


def test_risk_off_skips_pre_trade_risk_but_not_order_rules() -> None:
    sim = Sim(risk=False)
    sim.trade("100.00")
    sim.v.set_limit("max_orders_per_second", "1")
    assert rejection(sim.buy("far", "1", "50.00")) is None             # price band
    assert rejection(sim.buy("huge", "20000", "100.00")) is None       # notional and balance
    assert rejection(sim.buy("fast", "1", "99.00")) is None            # rate limit
    assert rejection(sim.buy("far", "1", "99.00")) == "duplicate_order_id"
    assert rejection(sim.sell("ro", "1", "99.00", reduce_only=True)) == "reduce_only"
    sim.v.halt(BTC)
    assert rejection(sim.buy("halted", "1", "99.00")) == "halted"


# -- halts, circuit breaker, kill switch -----------------------------------------------------------


def test_manual_halt_and_resume() -> None:
    sim = Sim()
    sim.buy("resting", "1", "99.00")
    sim.v.halt(BTC, "news")
    assert sim.v.halt_reason(BTC) == "halted"
    assert rejection(sim.buy("new", "1", "99.00")) == "halted"
    assert rejection(sim.buy("eth", "1", "99.00", symbol=ETH)) is None
    assert rejection(sim.amend("resting", price="98.00")) == "halted"
    assert rejection(sim.amend("resting", qty="2")) == "halted"
    assert kinds(sim.amend("resting", qty="0.5")) == ["amended"]  # size reductions pass
    sim.v.resume(BTC)
    assert sim.v.halt_reason(BTC) is None
    assert rejection(sim.buy("after", "1", "99.00")) is None
    assert cancels(sim.cancel("resting")) == [("resting", "user")]


def test_a_halt_names_its_reason() -> None:
    """A halt by hand refuses as `halted`, its text in the message; a stale exchange feed's halt
    refuses with its own reason."""
    sim = Sim()
    sim.v.halt(BTC, "news at noon")
    [refused] = sim.buy("news", "1", "99.00")
    assert (refused.reason, refused.message) == ("halted", f"{BTC} is halted: news at noon")
    sim.v.halt(ETH)
    [refused] = sim.buy("manual", "1", "99.00", symbol=ETH)
    assert (refused.reason, refused.message) == ("halted", f"{ETH} is halted")
    sim.v.halt(ETH, "feed_stale")
    assert sim.v.halt_reason(ETH) == "feed_stale"
    [refused] = sim.buy("stale", "1", "99.00", symbol=ETH)
    assert (refused.reason, refused.message) == ("feed_stale", f"{ETH} is halted")


def test_cancel_during_halt() -> None:
    sim = Sim()
    sim.buy("resting", "1", "99.00")
    sim.v.halt(BTC)
    assert cancels(sim.cancel("resting")) == [("resting", "user")]


def climb(sim: Sim, prices: list[str], times: list[int]) -> None:
    """Trades at each price in turn, against asks placed before the first trade (no band yet)."""
    for i, price in enumerate(prices):
        sim.sell(f"ask{i}", "0.1", price, account="m")
    for i, (price, ts) in enumerate(zip(prices, times)):
        events = sim.buy(f"lift{i}", "0.1", price, account="t", ts=ts, tif="IOC")
        assert sim.fills(events) == [(f"lift{i}", f"ask{i}", price.rstrip("0").rstrip("."), "0.1")], events


def test_circuit_breaker_trips_and_resumes_after_cooldown() -> None:
    sim = Sim()  # 10 % within 60 s halts for 60 s
    climb(sim, ["100.00", "104.00", "108.00", "110.01"], [1 * SECOND, 2 * SECOND, 3 * SECOND, 4 * SECOND])
    assert sim.v.halt_reason(BTC) == "circuit_breaker"
    assert rejection(sim.buy("during", "0.1", "110.00", ts=5 * SECOND)) == "circuit_breaker"
    assert rejection(sim.buy("other-symbol", "0.1", "110.00", symbol=ETH, ts=5 * SECOND)) is None
    assert rejection(sim.buy("just-before", "0.1", "110.00", ts=64 * SECOND - 1)) == "circuit_breaker"
    sim.v.advance(64 * SECOND)
    assert sim.v.halt_reason(BTC) is None
    assert rejection(sim.buy("after", "0.1", "110.00")) is None


def test_circuit_breaker_exactly_at_the_limit_does_not_trip() -> None:
    sim = Sim()
    climb(sim, ["100.00", "105.00", "110.00"], [SECOND, 2 * SECOND, 3 * SECOND])
    assert sim.v.halt_reason(BTC) is None


def test_circuit_breaker_ignores_moves_spread_beyond_the_window() -> None:
    sim = Sim()
    climb(sim, ["100.00", "104.00", "108.00", "110.01"], [SECOND, 100 * SECOND, 200 * SECOND, 300 * SECOND])
    assert sim.v.halt_reason(BTC) is None


def test_circuit_breaker_counts_moves_well_inside_the_window() -> None:
    sim = Sim()
    climb(sim, ["100.00", "104.00", "108.00", "110.01"], [SECOND, 20 * SECOND, 35 * SECOND, 51 * SECOND])
    assert sim.v.halt_reason(BTC) == "circuit_breaker"


def test_circuit_breaker_forgets_trades_that_left_the_window() -> None:
    sim = Sim()
    # 100.00 at 1 s is more than 66 s (window + its tenth) before 110.01 at 71 s; the rest span 5.8 %
    climb(sim, ["100.00", "104.00", "108.00", "110.01"], [SECOND, 25 * SECOND, 50 * SECOND, 71 * SECOND])
    assert sim.v.halt_reason(BTC) is None


def test_circuit_breaker_on_a_fall() -> None:
    sim = Sim()
    sim.v.set_limit("breaker_move_pct", "5", symbol=BTC)
    sim.buy("b0", "0.1", "100.00", account="m")
    sim.buy("b1", "0.1", "96.00", account="m")
    sim.buy("b2", "0.1", "95.00", account="m")
    sim.sell("s0", "0.1", "100.00", account="t", ts=SECOND)
    sim.sell("s1", "0.1", "96.00", account="t", ts=2 * SECOND)
    assert sim.v.halt_reason(BTC) is None
    sim.sell("s2", "0.1", "95.00", account="t", ts=3 * SECOND)  # (100 - 95) / 95 = 5.3 % > 5 %
    assert sim.v.halt_reason(BTC) == "circuit_breaker"


def test_resume_closes_a_tripped_breaker() -> None:
    sim = Sim()
    climb(sim, ["100.00", "104.00", "108.00", "110.01"], [SECOND, 2 * SECOND, 3 * SECOND, 4 * SECOND])
    sim.v.resume(BTC)
    assert rejection(sim.buy("after", "0.1", "110.00", ts=5 * SECOND)) is None


def test_breaker_can_be_switched_off_per_symbol() -> None:
    sim = Sim()
    sim.v.set_limit("breaker_move_pct", None, symbol=BTC)
    climb(sim, ["100.00", "104.00", "108.00", "110.01", "115.00"], [SECOND * i for i in range(1, 6)])
    assert sim.v.halt_reason(BTC) is None


def test_kill_switch_cancels_everything_and_refuses_new_orders() -> None:
    sim = Sim()
    sim.trade("100.00")
    sim.buy("a1-btc", "1", "99.00", account="a1")
    sim.sell("a2-eth", "1", "101.00", account="a2", symbol=ETH)
    sim.sell("a3-stop", "1", account="a3", stop="95.00")
    events = sim.v.set_kill_switch(True)
    assert sorted(cancels(events)) == [("a1-btc", "kill_switch"), ("a2-eth", "kill_switch"), ("a3-stop", "kill_switch")]
    assert sim.v.orders == {}
    assert sim.book(BTC) == [] and sim.book(ETH) == []
    assert all(sim.reserved(a) == 0 for a in ("a1", "a2", "a3"))
    assert rejection(sim.buy("new", "1", "99.00", account="a1")) == "kill_switch"
    assert rejection(sim.sell("new2", "1", "99.00", account="a9", symbol=ETH)) == "kill_switch"
    assert rejection(sim.cancel("a1-btc")) == "order_closed"
    sim.v.set_kill_switch(False)
    assert rejection(sim.buy("again", "1", "99.00", account="a1")) is None


def test_kill_switch_applies_with_risk_off() -> None:
    sim = Sim(risk=False)
    sim.v.set_kill_switch(True)
    assert rejection(sim.buy("new", "1", "99.00")) == "kill_switch"
