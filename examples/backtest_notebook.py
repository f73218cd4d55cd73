"""The backtesting Python API, as you would use it in a notebook or a script.

    python examples/backtest_notebook.py
"""

import tempfile
from pathlib import Path

import polars as pl

from tradsys.backtest import BacktestEngine
from tradsys.backtest.report import summary_table
from tradsys.engine.strategy import BarData, Param, Strategy

HERE = Path(__file__).parent

# 1. A built-in strategy over a file (parquet or CSV; bars or trades are detected from the columns).
engine = BacktestEngine(initial_capital=100_000, maker_fee_bps=1, taker_fee_bps=5, slippage_bps=1)
engine.add_strategy("sma_cross", {"fast": 5, "slow": 20, "quantity": 0.5})
engine.load_data(HERE / "data" / "btc_bars_1m.csv")
result = engine.run()

print(result.metrics["total_return"], result.metrics["sharpe"], result.metrics["max_drawdown"])
print(result.fills.head())   # polars DataFrame: ts, time, strategy, order_id, symbol, side, price, qty, fee, liquidity
print(result.trades.head())  # round trips with their PnL
print(result.equity.tail())  # ts, time, equity, drawdown, exposed


# 2. Your own strategy class, registered directly, on a polars DataFrame.
class BuyTheDip(Strategy):
    params = {"drop_pct": Param(float, 0.1, "buy after a bar falls this many percent", min=0),
              "quantity": Param(float, 0.1, "size in base units", min=0)}

    def on_bar(self, bar: BarData) -> None:
        fell = (bar.open - bar.close) / bar.open * 100
        if fell >= self.p.drop_pct and self.ctx.position() == 0:
            self.ctx.buy(self.p.quantity)
        elif self.ctx.position() > 0 and bar.close > bar.open:
            self.ctx.order_target(0)


bars = pl.read_csv(HERE / "data" / "btc_bars_1m.csv")
engine = BacktestEngine(initial_capital=50_000)
engine.add_strategy(BuyTheDip, {"drop_pct": 0.05})
engine.load_data(bars)
result = engine.run()

from rich.console import Console  # noqa: E402

Console().print(summary_table(result))
written = result.write(tempfile.mkdtemp(prefix="backtest-"), fmt="csv")  # fills/trades/equity + summary.json + report.html
print("wrote", *written)
