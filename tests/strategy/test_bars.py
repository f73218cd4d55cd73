"""Live, `on_bars` strategies get their bars through the context's bounded history and decide as in backtests."""

from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tradsys.backtest.engine import with_ticks
from tradsys.daemon.strategies import LiveContext
from tradsys.data import load_market_data
from tradsys.engine import Venue, VenueConfig
from tradsys.engine.strategy import BarData, Bars, Params, SmaCross, Strategy, StrategyRunner, resolve_params
from tradsys.engine.strategy.bars import KEEP

BARS = Path(__file__).resolve().parents[2] / "examples" / "data" / "btc_bars_1m.csv"


class Host:
    now = 0


def live(cls: type[Strategy], params: dict[str, Any]) -> StrategyRunner:
    venue = Venue(config=VenueConfig(initial_balances={"USD": Decimal(1_000_000)}))
    ctx = LiveContext(Host(), venue, ("BTC-USD",), "s-", "strat")  # type: ignore[arg-type]
    runner = StrategyRunner("1", cls, Params(resolve_params(cls.params, params)), ctx)
    runner.start()
    return runner


def bar_data(frame: pl.DataFrame) -> list[BarData]:
    return [BarData(ts, ts + 60, "BTC-USD", o, h, lo, c, v)
            for ts, o, h, lo, c, v in frame.select("ts", "open", "high", "low", "close", "volume").iter_rows()]


class Closes(Strategy):
    def on_start(self) -> None:
        self.seen: list[tuple[int, float, list[float]]] = []
        self.ctx.bars(keep=KEEP + 200)

    def on_bars(self, bars: Bars) -> None:
        n = bars.n
        self.seen.append((n, bars.close[n - 1], bars.series("close").to_list()))


def test_bars_reach_on_bars_through_on_bar_and_the_history_keeps_the_latest() -> None:
    assert Closes.overrides("on_bar") and not Strategy.overrides("on_bar")  # the host aggregates bars for it
    runner = live(Closes, {})
    closes = [100.0 + k for k in range(3 * KEEP)]
    for k, close in enumerate(closes):
        assert runner.call("on_bar", BarData(k, k + 1, "BTC-USD", close, close, close, close, 1.0))
    seen = runner.strategy.seen  # type: ignore[attr-defined]
    assert [close for _, close, _ in seen] == closes
    for k, (n, close, history) in enumerate(seen):
        assert history == closes[k + 1 - n:k + 1]
        assert n == k + 1 or KEEP + 200 <= n <= 2 * (KEEP + 200)  # at least `keep`, at most twice that
    bars = runner.ctx.bars()
    assert bars.n < len(closes) and len(bars.close) == bars.n
    assert bars.close_ticks[bars.n - 1] == round(closes[-1] * 100) and bars.ts[bars.n - 1] == len(closes) - 1


@pytest.mark.parametrize(("fast", "slow"), [(3, 8), (10, 30)])
def test_sma_cross_live_decides_where_its_signals_do(fast: int, slow: int) -> None:
    one = load_market_data(BARS).collect()  # 300 bars, again and again: more than the history keeps
    frame = pl.concat([one.with_columns(pl.col("ts") + k * one.height * 60 * 10**9) for k in range(8)])
    params = {"fast": fast, "slow": slow, "quantity": 0.5}
    runner = live(SmaCross, params)
    decisions: list[tuple[int, float]] = []
    k = 0

    def order_target(target: float, symbol: str | None = None) -> list[str]:
        decisions.append((k, target))
        return []

    runner.ctx.order_target = order_target  # type: ignore[method-assign]
    for k, bar in enumerate(bar_data(frame)):  # more bars than the history keeps (slow + 1)
        runner.call("on_bar", bar)
    assert runner.state == "running" and runner.ctx.bars().n < frame.height
    ticks = with_ticks(frame, "bars", ("BTC-USD",), runner.ctx.instruments)
    target = SmaCross.signals(ticks, Params(resolve_params(SmaCross.params, params)))
    expected = [(k, t) for k, t in enumerate(target) if t is not None]
    assert len(expected) > 2 and decisions == expected
