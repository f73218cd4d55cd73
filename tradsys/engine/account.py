"""Paper-trading accounts: a wallet per currency, and positions.

The venue margins every position fully (1x): a position ties up its cost basis, an open order
ties up its notional at its limit price (market orders: at the edge of the price band). Cash
moves only by realized PnL and fees, so equity = balance + unrealized PnL.
"""

from mypy_extensions import mypyc_attr

from tradsys.engine.position import Position
from tradsys.engine.recent import RecentIds

CLIENT_IDS = 10_000
"""Client ids remembered per account for duplicate detection: at least this many, at most twice.
They catch a retry of an order whose acknowledgement was lost, which comes within seconds; every
trading account keeps its own, so the memory stays short."""


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Wallet:
    """Cash in one currency, in 1e-8 units."""

    __slots__ = ("currency", "balance", "reserved", "margin")

    def __init__(self, currency: str, balance: int = 0) -> None:
        self.currency = currency
        self.balance = balance
        self.reserved = 0
        """Held back by open orders."""
        self.margin = 0
        """Tied up in open positions (their cost basis)."""

    @property
    def available(self) -> int:
        return self.balance - self.reserved - self.margin


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Account:
    __slots__ = (
        "id", "wallets", "positions", "client_ids", "rate_second", "rate_count", "loss_day",
        "day_realized", "reduce_only_open",
    )

    def __init__(self, id: str, balances: dict[str, int]) -> None:
        self.id = id
        self.wallets = {ccy: Wallet(ccy, amount) for ccy, amount in balances.items()}
        self.positions: dict[str, Position] = {}
        self.client_ids = RecentIds(CLIENT_IDS)
        """Client order ids used by this account: at least the last CLIENT_IDS of them."""
        self.rate_second = -1
        self.rate_count = 0
        self.loss_day = -1
        self.day_realized = 0
        """Realized PnL net of fees since the start of the engine-clock UTC day, in cash units."""
        self.reduce_only_open = 0

    def wallet(self, currency: str) -> Wallet:
        wallet = self.wallets.get(currency)
        if wallet is None:
            wallet = self.wallets[currency] = Wallet(currency)
        return wallet

    def position(self, symbol: str, quote: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(self.id, symbol, self.wallet(quote))
        return pos
