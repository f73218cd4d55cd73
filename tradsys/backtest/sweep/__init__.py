"""Parameter sweeps: many backtests of one strategy, on every core here or on a Ray cluster.

    from tradsys.backtest.sweep import SweepSettings, objective, run_sweep
    from tradsys.data import load_market_data
    data = load_market_data("btc_1m.parquet")
    report = run_sweep(data, SweepSettings("sma_cross", grid={"fast": ["5", "10"], "slow": ["50", "100"]},
                                           objective=objective("sharpe"), out=Path("sweep-out")))
    report.best["params"], report.results

What is tried: `space` (a grid, or ranges for Optuna: `optuna_search`), optionally inside
walk-forward folds (`walk_forward`). How one combination runs, wherever it runs: `task`. Where
they run: `local` (worker processes, or this one) or `ray_runner`; the data reach them once
(`dataset`). What finished is kept and skipped on --resume: `store`, `executor`. Putting it
together: `run`.
"""

from tradsys.backtest.sweep.errors import SweepError
from tradsys.backtest.sweep.objective import Objective, objective
from tradsys.backtest.sweep.run import SweepReport, SweepSettings, run_sweep
from tradsys.backtest.sweep.space import ParamRange, combinations, parse_grid, parse_ranges
from tradsys.backtest.sweep.task import SweepJob, Task, run_task

__all__ = ["Objective", "ParamRange", "SweepError", "SweepJob", "SweepReport", "SweepSettings", "Task", "combinations",
           "objective", "parse_grid", "parse_ranges", "run_sweep", "run_task"]
