"""The strategy's `ctx` in a backtest: its orders wait in the simulation until the fill rules deliver them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradsys.engine import OrderType, Side, TimeInForce, new_order
from tradsys.engine.strategy import BookData, Context, StrategyError
from tradsys.engine.strategy.bars import KEEP, Bars

if TYPE_CHECKING:
    from tradsys.backtest.sim import Simulation

SIDES = {"buy": Side.BUY, "sell": Side.SELL}
TYPES = {"limit": OrderType.LIMIT, "market": OrderType.MARKET, "stop": OrderType.STOP, "stop_limit": OrderType.STOP_LIMIT}
TIFS = {tif.value: tif for tif in TimeInForce}


class BacktestContext(Context):
    """Orders become pending actions that the run loop delivers under the fill rules."""

    def __init__(self, sim: Simulation, symbols: tuple[str, ...], prefix: str, account: str) -> None:
        super().__init__(sim.venue.instruments, symbols, prefix, account)
        self.sim = sim

    @property
    def now(self) -> int:
        return self.sim.now

    def _send_new(self, order_id: str, symbol: str, side: str, type: str, price: int | None, qty: int, tif: str,
                  post_only: bool, reduce_only: bool) -> None:
        order = new_order(order_id, self.account, symbol, SIDES[side], TYPES[type], qty, None if type == "market" else price,
                          price if type in ("stop", "stop_limit") else None,
                          TIFS.get(tif) or TimeInForce(tif.upper()), post_only, reduce_only, None, None, 0)
        self.sim.queue(symbol, ("new", order))

    def _send_cancel(self, order_id: str) -> None:
        order = self.orders.get(order_id)
        if order is not None:
            self.sim.queue(order.symbol, ("cancel", order_id, self.account))

    def _send_amend(self, order_id: str, price: int | None, qty: int | None) -> None:
        order = self.orders.get(order_id)
        if order is not None:
            self.sim.queue(order.symbol, ("amend", order_id, self.account, price, qty))

    def bars(self, symbol: str | None = None, keep: int = KEEP) -> Bars:
        """The run's history of `symbol`, shared by its strategies: a backtest keeps every bar."""
        symbol = symbol or self.symbols[0]
        if symbol not in self.instruments:
            raise StrategyError(f"unknown symbol {symbol!r}")
        return self.sim.bars(symbol)

    def book(self, symbol: str | None = None) -> BookData:
        symbol = symbol or self.symbols[0]
        last = self.sim.last_price(symbol)
        return BookData(self.sim.now, symbol, None, None, last)
