"""Backtesting: strategies over parquet/CSV bars or trades, through the engine's own venue.

    from tradsys.backtest import BacktestEngine
    engine = BacktestEngine(initial_capital=100_000)
    engine.add_strategy("sma_cross", {"fast": 10, "slow": 30, "quantity": 1})
    engine.load_data("examples/data/btc_bars_1m.csv")
    result = engine.run()

Fill rules: `tradsys.backtest.rules`. Metrics: `tradsys.backtest.metrics`.
"""

from tradsys.backtest.engine import BacktestConfig, BacktestEngine
from tradsys.backtest.result import BacktestResult

__all__ = ["BacktestConfig", "BacktestEngine", "BacktestResult"]
