"""The strategy API: one class, run unchanged by the backtester and live by the daemon.

    from tradsys.engine.strategy import Strategy, Param

    class Momentum(Strategy):
        params = {"quantity": Param(float, 1.0, "order size", min=0)}

        def on_bar(self, bar):
            if bar.close > bar.open and self.ctx.position() == 0:
                self.ctx.buy(self.p.quantity)

See `base.Strategy` for the callbacks, `context.Context` for what a strategy can do and `bars.Bars`
for the history that `on_bars`, the fast form of on_bar, reads.
"""

from tradsys.engine.strategy.bars import Bars
from tradsys.engine.strategy.base import BarData, BookData, FillData, OrderData, Strategy, TradeData
from tradsys.engine.strategy.builtins import BUILTINS, MarketMaking, MeanReversion, SmaCross
from tradsys.engine.strategy.context import Context, StrategyError
from tradsys.engine.strategy.loader import StrategyNotFound, load_strategy
from tradsys.engine.strategy.params import Duration, Param, ParamError, Params, parse_assignments, resolve_params
from tradsys.engine.strategy.runner import StrategyRunner

__all__ = [
    "BUILTINS", "BarData", "Bars", "BookData", "Context", "Duration", "FillData", "MarketMaking", "MeanReversion",
    "OrderData", "Param", "ParamError", "Params", "SmaCross", "Strategy", "StrategyError", "StrategyNotFound",
    "StrategyRunner", "TradeData", "load_strategy", "parse_assignments", "resolve_params",
]
