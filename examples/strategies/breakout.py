"""A commented example strategy: a Donchian channel breakout.

Run it in a backtest:

    tradsys backtest run examples/data/btc_bars_1m.csv --strategy examples/strategies/breakout.py:Breakout \
        --param lookback=20 --param quantity=0.5

or live in the daemon (the file must be readable by the daemon):

    tradsys strategy start examples/strategies/breakout.py:Breakout --param lookback=20

The same class runs in both, unchanged: it only talks to `self.ctx`.
"""

from collections import deque

from tradsys.engine.strategy import BarData, FillData, OrderData, Param, Strategy


class Breakout(Strategy):
    # `description` and the parameter docs are what `tradsys backtest strategies FILE:Class` and
    # `tradsys strategy list` show.
    description = "Long when the close breaks above the highest high of the last `lookback` bars; flat below the lowest low."

    # Declared parameters: type, default, description, optional bounds. Values from the CLI
    # (--param lookback=20) or gRPC are text; they are converted and checked before the strategy starts.
    params = {
        "lookback": Param(int, 20, "bars in the channel", min=2),
        "quantity": Param(float, 0.1, "position when long, in base units", min=0),
    }

    # Live, on_bar gets bars of this length built from the venue's trades.
    bar_interval = "1m"

    def on_start(self) -> None:
        # Called once before any data. self.p holds the typed parameters.
        self.highs: deque[float] = deque(maxlen=self.p.lookback)
        self.lows: deque[float] = deque(maxlen=self.p.lookback)

    def on_bar(self, bar: BarData) -> None:
        # Called at the close of each bar. An order made here reaches the venue at the next bar's
        # open in a backtest (no look-ahead), at the next engine tick live.
        if len(self.highs) == self.p.lookback:
            position = self.ctx.position(bar.symbol)
            if bar.close > max(self.highs) and position == 0:
                self.ctx.buy(self.p.quantity, symbol=bar.symbol)  # market order
            elif bar.close < min(self.lows) and position > 0:
                self.ctx.order_target(0, bar.symbol)  # a reduce-only sell of the whole position
        self.highs.append(bar.high)
        self.lows.append(bar.low)

    def on_fill(self, fill: FillData) -> None:
        # Every fill of our orders, with our position right after it.
        self.ctx.log("filled", side=fill.side, qty=fill.qty, price=fill.price, position=fill.position)

    def on_order(self, order: OrderData) -> None:
        # Accepted, cancelled, rejected (by risk checks, with the reason), expired.
        if order.status == "rejected":
            self.ctx.log("order rejected", id=order.id, reason=order.reason)

    def on_stop(self) -> None:
        # Called on a graceful stop; open orders are cancelled afterwards anyway.
        self.ctx.log("stopping", pnl=round(self.ctx.pnl(), 2))
