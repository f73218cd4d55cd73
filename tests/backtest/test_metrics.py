"""Metrics on hand-computed equity curves and trades."""

import math
import statistics

import pytest

from tradsys.backtest.metrics import YEAR_NS, drawdown, returns_stats, round_trips, summary, trade_stats

DAY = 86_400 * 10**9
EQUITY = [100.0, 110.0, 99.0, 105.0, 111.0, 100.0]
TS = [i * DAY for i in range(len(EQUITY))]


def test_drawdown_depth_and_duration() -> None:
    dd = drawdown(TS, EQUITY)
    assert dd["max_drawdown"] == pytest.approx(0.1)  # 110 -> 99
    assert dd["max_drawdown_duration_ns"] == 3 * DAY  # below 110 from day 1 until day 4


def test_no_drawdown_on_a_rising_curve() -> None:
    assert drawdown([0, 1, 2], [1.0, 2.0, 3.0]) == {"max_drawdown": 0.0, "max_drawdown_duration_ns": 0}


def test_sharpe_and_sortino_by_hand() -> None:
    rets = [EQUITY[i] / EQUITY[i - 1] - 1 for i in range(1, len(EQUITY))]
    mean, std = statistics.mean(rets), statistics.stdev(rets)
    down = math.sqrt(sum(min(r, 0) ** 2 for r in rets) / len(rets))
    stats = returns_stats(EQUITY, 365)
    assert stats["sharpe"] == pytest.approx(mean / std * math.sqrt(365))
    assert stats["sortino"] == pytest.approx(mean / down * math.sqrt(365))


def test_summary_returns_and_cagr() -> None:
    ts = [0, YEAR_NS // 2, YEAR_NS]
    m = summary(ts, [100.0, 105.0, 121.0], exposure=0.5, fees=1.5, fills=4, trade_pnls=[10, -5, 3, -2], initial=100.0)
    assert m["total_return"] == pytest.approx(0.21)
    assert m["cagr"] == pytest.approx(0.21)  # exactly one year
    assert m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(13 / 7)
    assert m["trades"] == 4 and m["fills"] == 4 and m["exposure"] == 0.5 and m["fees"] == 1.5
    assert m["calmar"] is None  # no drawdown
    dipped = summary(ts, [100.0, 90.0, 121.0], exposure=0.5, fees=0.0, fills=2, trade_pnls=[21], initial=100.0)
    assert dipped["calmar"] == pytest.approx(0.21 / 0.1)  # CAGR over the 10% drawdown


def test_trade_stats_without_losses() -> None:
    assert trade_stats([1.0, 2.0])["profit_factor"] is None
    assert trade_stats([])["win_rate"] is None


def test_round_trips_flat_to_flat_and_reversals() -> None:
    assert round_trips([(0, 1.0, 100.0, 0.0), (1, -1.0, 110.0, 1.0)]) == [(0, 1, 1.0, 9.0, 1, 1.0)]
    trips = round_trips([(0, 1.0, 100.0, 0.0), (1, -2.0, 110.0, 0.0), (2, 1.0, 105.0, 0.0)])
    assert trips == [(0, 1, 1.0, 10.0, 1, 0.0), (1, 2, 1.0, 5.0, -1, 0.0)]
    trips = round_trips([(0, -1.0, 100.0, 0.5), (1, 2.0, 90.0, 2.0), (2, -1.0, 95.0, 1.0)])
    assert trips == [(0, 1, 1.0, 8.5, -1, 1.5), (1, 2, 1.0, 3.0, 1, 2.0)]  # the reversal's fee split by qty
    assert round_trips([(0, 1.0, 100.0, 0.0)]) == []  # still open
