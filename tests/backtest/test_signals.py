"""Recorded peers' signals replayed in backtests: fills known by hand from the data and the fill
rules (tradsys.backtest.rules), and the order of signals among the data's own events."""

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.backtest.helpers import MIN, SEC, T0, bars, trades
from tradsys.backtest import BacktestEngine
from tradsys.cli.app import app
from tradsys.data import DataError
from tradsys.engine.strategy import Strategy

FOLLOWER = f"{Path(__file__).resolve().parents[2] / 'examples' / 'strategies' / 'signal_follower.py'}:SignalFollower"
MS = 1_000_000
"""Nanoseconds per millisecond: a signal's time is epoch ms."""

BARS = bars([
    (100, 101, 99, 100),    # t0 = T0, closes at T0 + 1 min
    (102, 103, 101, 102),   # t1
    (104, 106, 103, 105),   # t2
    (105, 107, 100, 101),   # t3, closes at T0 + 4 min
])


def signal(at_ns: int, side: str, strength: float = 0.9, symbol: str = "BTC-USD") -> dict[str, Any]:
    """As `tradsys signals listen --json` records it."""
    return {"symbol": symbol, "side": side, "strength": strength, "time": at_ns // MS, "sender": "desk-1",
            "subject": "desk"}


RECORDING = [
    signal(T0 + 30 * SEC, "buy"),            # in t0: waits for t1's open, 102
    signal(T0 + 90 * SEC, "sell", 0.2),      # too weak for the strategy
    signal(T0 + 2 * MIN, "sell"),            # t1's close = t2's open: before both; fills at t2's open, 104
    signal(T0 + 150 * SEC, "buy", 1.0),      # in t2: t3's open, 105
    signal(T0 + 150 * SEC, "buy", symbol="ETH-USD"),  # no strategy trades it
    signal(T0 - MIN, "sell"),                # before the data
    signal(T0 + 10 * MIN, "sell"),           # after the data
]


def run(data: pl.DataFrame, recording: Any, strategy: Any = FOLLOWER, **options: Any) -> Any:
    engine = BacktestEngine(1_000_000, maker_fee_bps=0, taker_fee_bps=0, signals=recording, **options)
    engine.add_strategy(strategy, {"quantity": 1} if strategy == FOLLOWER else {})
    engine.load_data(data)
    return engine.run()


def fills(result: Any) -> list[tuple]:
    return [(r["ts"], r["side"], r["price"], r["qty"], r["liquidity"]) for r in result.fills.iter_rows(named=True)]


def test_on_bars_a_signal_trades_at_the_next_open_after_it() -> None:
    result = run(BARS, list(reversed(RECORDING)))  # the replay orders them by time
    assert fills(result) == [(T0 + MIN, "buy", 102.0, 1.0, "taker"), (T0 + 2 * MIN, "sell", 104.0, 1.0, "taker"),
                             (T0 + 3 * MIN, "buy", 105.0, 1.0, "taker")]
    assert [(ts, text) for _, ts, text in result.logs] == [  # on_signal ran at each signal's time
        (T0 + 30 * SEC, "signal sender=desk-1 side=buy"), (T0 + 2 * MIN, "signal sender=desk-1 side=sell"),
        (T0 + 150 * SEC, "signal sender=desk-1 side=buy")]
    assert result.info["signals"] == {"recorded": 7, "delivered": 4, "no_strategy": 1, "outside_data": 2}
    assert result.info["mode"] == "event"
    assert any("2 of 7 recorded signals fall outside" in w for w in result.warnings), result.warnings
    assert any("1 recorded signals are for symbols no strategy trades" in w for w in result.warnings)


class Journal(Strategy):
    """Logs each callback (at `ctx.now`): bars with their start, signals with the bars closed by then."""

    def on_bar(self, bar: Any) -> None:
        self.ctx.log("bar", start=bar.ts)

    def on_signal(self, signal: dict[str, Any]) -> None:
        self.ctx.log("signal", closed=self.ctx.bars().n, side=signal["side"], subject=signal["subject"])


def test_on_bars_a_signal_comes_between_the_bars_it_falls_between_and_before_a_close_at_its_time() -> None:
    result = run(BARS, [signal(T0 + 30 * SEC, "buy"), signal(T0 + 2 * MIN, "sell")], Journal)
    assert [(ts, text) for _, ts, text in result.logs] == [
        (T0 + 30 * SEC, "signal closed=0 side=buy subject=desk"),
        (T0 + MIN, f"bar start={T0}"),
        (T0 + 2 * MIN, "signal closed=1 side=sell subject=desk"),  # t1 closes at this instant, after it
        (T0 + 2 * MIN, f"bar start={T0 + MIN}"),
        (T0 + 3 * MIN, f"bar start={T0 + 2 * MIN}"),
        (T0 + 4 * MIN, f"bar start={T0 + 3 * MIN}"),
    ]


def test_on_bars_a_signal_in_a_gap_of_the_data_trades_at_the_open_after_the_gap() -> None:
    gapped = BARS.with_columns(pl.Series("ts", [T0, T0 + MIN, T0 + 5 * MIN, T0 + 6 * MIN]))  # nothing for 3 min
    assert fills(run(gapped, [signal(T0 + 3 * MIN, "buy")])) == [(T0 + 5 * MIN, "buy", 104.0, 1.0, "taker")]


TRADES = trades([(0, 100, 1, "buy"), (10, 101, 1, "sell"), (20, 103, 1, "buy"), (30, 99, 1, "sell")])


def test_on_trades_a_signal_comes_before_a_trade_at_its_time_and_fills_at_the_last_trade() -> None:
    recording = [signal(T0 + 15 * SEC, "buy"), signal(T0 + 20 * SEC, "sell"), signal(T0 + 25 * SEC, "buy", 0.1),
                 signal(T0 + 40 * SEC, "buy")]
    result = run(TRADES, recording)
    # 15 s: the last trade is 101 (10 s); 20 s: the trade at 20 s comes after the signal, so 101 again
    assert fills(result) == [(T0 + 15 * SEC, "buy", 101.0, 1.0, "taker"), (T0 + 20 * SEC, "sell", 101.0, 1.0, "taker")]
    assert result.info["signals"] == {"recorded": 4, "delivered": 3, "no_strategy": 0, "outside_data": 1}


def test_with_latency_a_signal_s_order_arrives_later_and_meets_a_later_trade() -> None:
    result = run(TRADES, [signal(T0 + 15 * SEC, "buy")], latency_ms=6_000)
    assert fills(result) == [(T0 + 21 * SEC, "buy", 103.0, 1.0, "taker")]  # arrives at 21 s: last trade 103 (20 s)


def test_backtest_run_replays_a_recording_file(tmp_path: Path) -> None:
    data, recording = tmp_path / "bars.parquet", tmp_path / "signals.jsonl"
    BARS.write_parquet(data)
    recording.write_text("".join(json.dumps(doc) + "\n" for doc in RECORDING[:4]) + "\n")
    out = CliRunner().invoke(app, ["backtest", "run", str(data), "-s", FOLLOWER, "-p", "quantity=1", "--taker-fee-bps",
                                   "0", "--signals", str(recording), "--json", "--out", str(tmp_path / "out")])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["info"]["signals"] == {"recorded": 4, "delivered": 4, "no_strategy": 0,
                                                         "outside_data": 0}
    written = pl.read_parquet(tmp_path / "out" / "fills.parquet")
    assert written.select("side", "price").rows() == [("buy", 102.0), ("sell", 104.0), ("buy", 105.0)]


def test_a_recording_that_is_not_one_is_refused_naming_the_line(tmp_path: Path) -> None:
    data, recording = tmp_path / "bars.parquet", tmp_path / "signals.jsonl"
    BARS.write_parquet(data)
    recording.write_text(json.dumps(RECORDING[0]) + "\n" + '{"symbol": "BTC-USD", "side": "hold", "time": 1}\n')
    out = CliRunner().invoke(app, ["backtest", "run", str(data), "-s", FOLLOWER, "--signals", str(recording)])
    assert out.exit_code == 2 and f"{recording}:2: not a signal: side is buy or sell" in out.output
    with pytest.raises(DataError, match="signal 1: a recorded signal needs its time"):
        run(BARS, [{"symbol": "BTC-USD", "side": "buy"}])
