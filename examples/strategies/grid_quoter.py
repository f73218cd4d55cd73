"""A commented example of a quoting strategy on trades: a small grid of resting limit orders.

    tradsys backtest run examples/data/btc_trades.parquet --strategy examples/strategies/grid_quoter.py:GridQuoter
    tradsys strategy start examples/strategies/grid_quoter.py:GridQuoter --param step_bps=5

It uses timers (on_timer), the book (ctx.book), open orders (ctx.open_orders) and fills (on_fill).
"""

from tradsys.engine.strategy import Duration, FillData, Param, Strategy


class GridQuoter(Strategy):
    description = "Keeps `levels` bids and asks `step_bps` apart around the mid; re-centres every `every`."
    params = {
        "levels": Param(int, 2, "orders per side", min=1, max=10),
        "step_bps": Param(float, 5.0, "distance between levels in basis points", min=0.1),
        "quantity": Param(float, 0.001, "size of each order in base units", min=0),
        "every": Param(Duration, Duration(30), "re-centre interval, e.g. 30s or 1m"),
    }

    def on_start(self) -> None:
        self.ctx.set_timer("recentre", float(self.p.every))  # repeats until cancel_timer
        self.recentre()

    def on_timer(self, name: str) -> None:
        self.recentre()

    def on_fill(self, fill: FillData) -> None:
        self.ctx.log("grid fill", side=fill.side, price=fill.price, liquidity=fill.liquidity)

    def recentre(self) -> None:
        mid = self.ctx.book().mid  # best bid/ask mid live; the last trade in a backtest on trades
        if mid is None:
            return  # nothing traded yet
        self.ctx.cancel_all()
        step = mid * self.p.step_bps / 10_000
        for level in range(1, self.p.levels + 1):
            # post_only: never take liquidity (refused instead of crossing)
            self.ctx.buy(self.p.quantity, mid - level * step, post_only=True)
            self.ctx.sell(self.p.quantity, mid + level * step, post_only=True)
