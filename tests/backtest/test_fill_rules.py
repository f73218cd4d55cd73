"""Fill rules on hand-made data where the right fills are known by hand (see tradsys.backtest.rules)."""

import polars as pl
import pytest

from tests.backtest.helpers import MIN, SEC, T0, bars, scripted, trades
from tradsys.backtest import BacktestEngine


def run(data: pl.DataFrame, script: dict, mode: str = "bars", **options: object):  # type: ignore[no-untyped-def]
    engine = BacktestEngine(1_000_000, maker_fee_bps=0, taker_fee_bps=0, **options)
    engine.add_strategy(scripted(script, mode))
    engine.load_data(data)
    result = engine.run()
    return engine, result, [(r["ts"], r["side"], r["price"], r["qty"], r["liquidity"]) for r in result.fills.iter_rows(named=True)]


BARS = bars([
    (100, 101, 99, 100),    # t0
    (102, 103, 101, 102),   # t1
    (104, 106, 103, 105),   # t2
    (105, 107, 100, 101),   # t3
])


def test_market_order_at_close_fills_at_next_open() -> None:
    _, _, fills = run(BARS, {0: [("buy", (1,), {})]})
    assert fills == [(T0 + MIN, "buy", 102.0, 1.0, "taker")]


def test_market_order_on_last_bar_never_fills() -> None:
    _, _, fills = run(BARS, {3: [("buy", (1,), {})]})
    assert fills == []


def test_limit_fills_only_when_a_later_bar_trades_through() -> None:
    script = {1: [("sell", (1, 105.5), {}), ("buy", (1, 103), {})]}
    # t2: high 106 > 105.5 -> sell fills at 105.5; low 103 is not below 103 -> no buy fill
    # t3: low 100 < 103 -> buy fills at 103
    _, _, fills = run(BARS, script)
    assert fills == [(T0 + 2 * MIN, "sell", 105.5, 1.0, "maker"), (T0 + 3 * MIN, "buy", 103.0, 1.0, "maker")]


def test_limit_through_the_next_open_fills_at_the_open_as_taker() -> None:
    _, _, fills = run(BARS, {2: [("buy", (1, 110), {})]})
    assert fills == [(T0 + 3 * MIN, "buy", 105.0, 1.0, "taker")]


def test_limit_placed_at_close_cannot_fill_in_the_same_bar() -> None:
    # placed at the close of t0 at 100.5: t0's own high (101) is ignored; t1 opens at 102 (above) -> rests;
    # t1 high 103 > 100.5 for a sell -> fills in t1, not t0
    _, _, fills = run(BARS, {0: [("sell", (1, 100.5), {})]})
    assert fills == [(T0 + MIN, "sell", 102.0, 1.0, "taker")]


def test_slippage_moves_market_fills_against_the_order() -> None:
    _, _, fills = run(BARS, {0: [("buy", (1,), {})], 1: [("sell", (1,), {"reduce_only": True})]}, slippage_bps=10)
    # 102 * 1.001 = 102.102 -> rounded up to the tick: 102.11; 104 * 0.999 = 103.896 -> down: 103.89
    assert fills == [(T0 + MIN, "buy", 102.11, 1.0, "taker"), (T0 + 2 * MIN, "sell", 103.89, 1.0, "taker")]


def test_fees_follow_liquidity() -> None:
    engine = BacktestEngine(1_000_000, maker_fee_bps=1, taker_fee_bps=5)
    engine.add_strategy(scripted({0: [("buy", (1,), {})], 1: [("sell", (1, 105.5), {})]}))
    engine.load_data(BARS)
    result = engine.run()
    assert result.fills.get_column("fee").to_list() == pytest.approx([102 * 5e-4, 105.5 * 1e-4])
    assert result.metrics["fees"] == pytest.approx(102 * 5e-4 + 105.5 * 1e-4)
    assert result.metrics["final_equity"] == pytest.approx(1_000_000 + 3.5 - 102 * 5e-4 - 105.5 * 1e-4)


def test_risk_checks_run_on_backtest_orders() -> None:
    _, result, fills = run(BARS, {0: [("buy", (1,), {})]}, limits={"max_position": "0.5"})
    assert fills == []
    assert result.info["rejections"] == {"max_position": 1}


def test_cancel_reaches_the_venue_before_the_next_bar_trades() -> None:
    _, _, fills = run(BARS, {1: [("buy", (1, 103), {})], 2: [("cancel_all", (), {})]})
    assert fills == []  # t3 would have filled it (low 100) but it was cancelled at t2's close


TRADES = trades([
    (1, 100.0, 2.0, "buy"),
    (2, 99.5, 1.0, "sell"),   # touches the bid at 99.5
    (3, 99.4, 0.4, "sell"),   # through the bid: fills 0.4
    (4, 99.0, 5.0, "sell"),   # through: fills the remaining 0.6
    (5, 100.6, 1.0, "buy"),   # through the ask at 100.5
])
QUOTES = {0: [("buy", (1, 99.5), {}), ("sell", (1, 100.5), {})]}


def test_trades_fill_only_through_the_price_up_to_the_trade_size() -> None:
    _, _, fills = run(TRADES, QUOTES, mode="trades")
    assert fills == [
        (T0 + 3 * SEC, "buy", 99.5, 0.4, "maker"),
        (T0 + 4 * SEC, "buy", 99.5, 0.6, "maker"),
        (T0 + 5 * SEC, "sell", 100.5, 1.0, "maker"),
    ]


def test_touch_queue_model_fills_at_the_price() -> None:
    _, _, fills = run(TRADES, QUOTES, mode="trades", queue="touch")
    assert fills[0] == (T0 + 2 * SEC, "buy", 99.5, 1.0, "maker")


def test_latency_delays_orders() -> None:
    # quotes made at the first trade (1s) arrive 2.5s later, at 3.5s: the trades at 2s and 3s cannot fill
    # them; on arrival the bid at 99.5 is through the last trade (99.4), so it takes at 99.4
    _, _, fills = run(TRADES, QUOTES, mode="trades", latency_ms=2500)
    assert fills == [(T0 + 3_500_000_000, "buy", 99.4, 1.0, "taker"), (T0 + 5 * SEC, "sell", 100.5, 1.0, "maker")]


def test_market_order_on_trades_fills_at_the_last_trade() -> None:
    # after the first bid fill the script sends a market sell: it fills at that trade's price, 99.4, as taker
    script = {**QUOTES, 1: [("sell", (0.4,), {"reduce_only": True})]}
    _, _, fills = run(TRADES, script, mode="trades")
    assert fills[:2] == [(T0 + 3 * SEC, "buy", 99.5, 0.4, "maker"), (T0 + 3 * SEC, "sell", 99.4, 0.4, "taker")]
