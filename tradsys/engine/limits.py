"""Risk limits as data: what a user sets, at which scope, resolved into engine units.

Limits are set at four scopes, most specific first: account+symbol, account, symbol, global.
The engine works on integer units, so each (account, symbol) pair gets its limits resolved
and converted once and cached until the next change.
"""

from dataclasses import dataclass
from decimal import Decimal

from mypy_extensions import mypyc_attr

from tradsys.engine.errors import Rejected
from tradsys.engine.instrument import CASH_SCALE, Instrument, to_decimal

DEFAULT_LIMITS: dict[str, Decimal | None] = {
    "max_order_notional": Decimal(1_000_000),  # largest notional of one order, in the quote currency
    "max_position": None,  # largest absolute position per instrument, counting open orders, in base units
    "price_band_pct": Decimal(5),  # limit prices more than this % away from the last trade (or mid) are refused
    "max_orders_per_second": Decimal(1000),  # new orders and amends per account per engine-clock second
    "daily_loss_limit": None,  # realized loss net of fees per account per UTC day after which new orders are refused
    "breaker_move_pct": Decimal(10),  # a move larger than this % within the window halts the instrument
    "breaker_window_s": Decimal(60),  # circuit breaker look-back window in seconds
    "breaker_cooldown_s": Decimal(60),  # how long a tripped circuit breaker halts the instrument
}
"""Every limit a user can set, with its default; None means no limit."""

Scope = tuple[str | None, str | None]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
@dataclass
class Limits:
    """Resolved limits for one (account, symbol), in engine units; None = unlimited."""

    max_notional: int | None
    max_position: int | None
    band_ppm: int | None
    rate: int | None
    loss: int | None


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class RiskLimits:
    """The limits users set, by scope; `resolved` gives one (account, symbol)'s in engine units."""

    __slots__ = ("_values", "_resolved")

    def __init__(self) -> None:
        self._values: dict[Scope, dict[str, Decimal | None]] = {(None, None): dict(DEFAULT_LIMITS)}
        self._resolved: dict[str, dict[str, Limits]] = {}
        """account -> symbol -> Limits: two lookups of strings whose hash is cached, where a tuple key
        would be built, hashed and compared on every order."""

    def set(self, key: str, value: object, account: str | None = None, symbol: str | None = None) -> None:
        """Set a limit; `value` None (or "none") lifts it at this scope, "default" removes the override."""
        if key not in DEFAULT_LIMITS:
            raise Rejected("unknown_limit", f"unknown limit {key!r}; known: {', '.join(DEFAULT_LIMITS)}")
        scope = (account, symbol)
        if isinstance(value, str) and value.lower() == "default":
            if scope == (None, None):
                self._values[scope][key] = DEFAULT_LIMITS[key]
            else:
                self._values.get(scope, {}).pop(key, None)
        else:
            number = None if value is None or (isinstance(value, str) and value.lower() == "none") else to_decimal(value, "limit")
            if number is not None and number < 0:
                raise Rejected("invalid_limit", f"{key} must not be negative")
            if key.startswith("breaker_") and number is None and key != "breaker_move_pct":
                raise Rejected("invalid_limit", f"{key} needs a value")
            self._values.setdefault(scope, {})[key] = number
        self._resolved.clear()

    def get(self, key: str, account: str | None = None, symbol: str | None = None) -> Decimal | None:
        for scope in ((account, symbol), (account, None), (None, symbol), (None, None)):
            values = self._values.get(scope)
            if values is not None and key in values:
                return values[key]
        raise Rejected("unknown_limit", f"unknown limit {key!r}")

    def entries(self) -> list[tuple[str | None, str | None, str, Decimal | None]]:
        """Every explicitly set value with its scope, globals first."""
        order = sorted(self._values, key=lambda s: (s[0] is not None, s[0] or "", s[1] is not None, s[1] or ""))
        return [(a, s, k, v) for a, s in order for k, v in self._values[(a, s)].items()]

    def resolved(self, account: str, instrument: Instrument) -> Limits:
        by_symbol = self._resolved.get(account)
        if by_symbol is None:
            by_symbol = self._resolved[account] = {}
        limits = by_symbol.get(instrument.symbol)
        if limits is None:
            limits = by_symbol[instrument.symbol] = self._resolve(account, instrument)
        return limits

    def _resolve(self, account: str, inst: Instrument) -> Limits:
        def get(name: str) -> Decimal | None:
            return self.get(name, account, inst.symbol)

        notional, position, band, rate, loss = (
            get("max_order_notional"), get("max_position"), get("price_band_pct"),
            get("max_orders_per_second"), get("daily_loss_limit"),
        )
        return Limits(
            max_notional=None if notional is None else int(notional * CASH_SCALE),
            max_position=None if position is None else int(position / inst.lot_size),
            band_ppm=None if band is None else int(band * 10_000),
            rate=None if rate is None else int(rate),
            loss=None if loss is None else int(loss * CASH_SCALE),
        )
