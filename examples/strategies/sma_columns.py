"""A commented example of the fast bar callback, `on_bars`: an SMA crossover that reads its history as columns.

    tradsys backtest run examples/data/btc_bars_1m.csv --no-vectorised \
        --strategy examples/strategies/sma_columns.py:SmaColumns --param fast=10 --param slow=30

It takes the decisions of the built-in `sma_cross` (the tests check it). `on_bars` gets the
symbol's `Bars`: lists of ts, open, high, low, close, volume and the prices in ticks, of which the
first `bars.n` are the bars closed so far. A backtest hands over the same lists at every bar and
only moves `n`, so a strategy pays for what it reads and nothing else; live they grow by a bar.
"""

from tradsys.engine.strategy import Bars, Param, Strategy


class SmaColumns(Strategy):
    description = "Long when the fast SMA of closes is above the slow one, flat when below."
    params = {
        "fast": Param(int, 10, "fast SMA length in bars", min=1),
        "slow": Param(int, 30, "slow SMA length in bars", min=2),
        "quantity": Param(float, 1.0, "position when long, in base units", min=0),
    }

    def on_start(self) -> None:
        # Plain attributes: self.p.fast is a dictionary lookup at every bar.
        self.fast, self.slow, self.quantity = self.p.fast, self.p.slow, self.p.quantity
        if self.fast >= self.slow:
            raise ValueError("fast must be shorter than slow")
        self.symbol = self.ctx.symbols[0]
        self.ctx.bars(self.symbol, keep=self.slow)  # live: keep at least `slow` bars
        self.above: bool | None = None

    def on_bars(self, bars: Bars) -> None:
        # Called at each bar's close; the columns end with that bar.
        if bars.symbol != self.symbol or bars.n < self.slow:
            return
        closes = bars.close_ticks  # integers: the sums compare exactly
        above = sum(closes[-self.fast:]) * self.slow > sum(closes[-self.slow:]) * self.fast
        if self.above is not None and above != self.above:
            self.ctx.order_target(self.quantity if above else 0.0, self.symbol)
        self.above = above
