"""Backtesting: strategies over parquet/CSV bars or trades, through the engine's own venue.

    from tradsys.backtest import BacktestEngine
    engine = BacktestEngine(initial_capital=100_000)
    engine.add_strategy("sma_cross", {"fast": 10, "slow": 30, "quantity": 1})
    engine.load_data("examples/data/btc_bars_1m.csv")
    result = engine.run()

Fill rules: `tradsys.backtest.rules`. Run modes: `vectorised`, `event_bars`, `trades`, each driving a
`sim.Simulation`. One result for all: `result`. Metrics: `metrics`.
"""

from tradsys.backtest.config import BacktestConfig
from tradsys.backtest.engine import BacktestEngine
from tradsys.backtest.result import BacktestResult

__all__ = ["BacktestConfig", "BacktestEngine", "BacktestResult"]
