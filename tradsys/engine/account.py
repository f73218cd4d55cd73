"""Paper-trading accounts: cash per currency, what open orders hold back, and positions.

The venue margins every position fully (1x): a position ties up its cost basis, an open order
ties up its notional at its limit price (market orders: at the edge of the price band). Cash
moves only by realized PnL and fees, so equity = balance + unrealized PnL.
"""

from tradsys.engine.position import Position


class Account:
    __slots__ = (
        "id", "balances", "reserved", "margin", "positions", "client_ids",
        "rate_second", "rate_count", "loss_day", "day_realized", "reduce_only_open",
    )

    def __init__(self, id: str, balances: dict[str, int]) -> None:
        self.id = id
        self.balances = dict(balances)
        self.reserved: dict[str, int] = {}
        self.margin: dict[str, int] = {}
        self.positions: dict[str, Position] = {}
        self.client_ids: set[str] = set()
        self.rate_second = -1
        self.rate_count = 0
        self.loss_day = -1
        self.day_realized = 0
        """Realized PnL net of fees since the start of the engine-clock UTC day, in cash units."""
        self.reduce_only_open = 0

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(self.id, symbol)
        return pos

    def available(self, currency: str) -> int:
        return self.balances.get(currency, 0) - self.reserved.get(currency, 0) - self.margin.get(currency, 0)

    def reserve(self, currency: str, amount: int) -> None:
        self.reserved[currency] = self.reserved.get(currency, 0) + amount
