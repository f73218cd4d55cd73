"""Instruments and the conversions between decimal edge values and integer ticks/lots."""

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Final

from tradsys.engine.errors import Rejected

CASH_SCALE: Final = 10**8
"""Cash amounts are integers in 1e-8 of the currency: exact, and fine enough for every default instrument."""


def to_decimal(value: object, what: str) -> Decimal:
    """Parse an edge value; floats are refused because they are not exact."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise Rejected(f"invalid_{what}", f"{what} {value!r} is not a decimal number") from None
    else:
        raise Rejected(f"invalid_{what}", f"{what} must be a decimal string, got {type(value).__name__}")
    if not number.is_finite():
        raise Rejected(f"invalid_{what}", f"{what} {value!r} is not finite")
    return number


def plain(value: Decimal) -> Decimal:
    """Without trailing zeros or exponent, so that `f"{x:,}"` reads well: 1E+6 -> 1000000."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


def from_cash(units: int) -> Decimal:
    return plain(Decimal(units).scaleb(-8))


def to_cash(value: object) -> int:
    number = to_decimal(value, "amount") * CASH_SCALE
    if number != number.to_integral_value():
        raise Rejected("invalid_amount", f"amount {value!r} has more than 8 decimals")
    return int(number)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable pair. Inside the engine prices are ticks and quantities are lots."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_qty: int = 1
    max_qty: int = 10**12
    cash_mult: int = field(init=False)
    _parsed: dict[tuple[str, str], int] = field(init=False, repr=False, compare=False, hash=False)
    """Text already converted to ticks/lots: edges see the same few prices and sizes again and again."""

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError(f"{self.symbol}: tick and lot size must be positive")
        mult = self.tick_size * self.lot_size * CASH_SCALE
        if mult != mult.to_integral_value():
            raise ValueError(f"{self.symbol}: tick*lot must be a multiple of 1e-8")
        object.__setattr__(self, "cash_mult", int(mult))
        object.__setattr__(self, "_parsed", {})

    def __reduce__(self) -> tuple[type["Instrument"], tuple[str, str, str, Decimal, Decimal, int, int]]:
        """Pickle (engine snapshots) by construction: compiled, the default would assign the frozen fields."""
        return Instrument, (self.symbol, self.base, self.quote, self.tick_size, self.lot_size, self.min_qty, self.max_qty)

    def price_to_ticks(self, value: object) -> int:
        if type(value) is str:
            return self._cached("price", value, self._price_to_ticks)
        return self._price_to_ticks(value)

    def qty_to_lots(self, value: object) -> int:
        if type(value) is str:
            return self._cached("qty", value, self._qty_to_lots)
        return self._qty_to_lots(value)

    def _cached(self, kind: str, text: str, convert: Callable[[object], int]) -> int:
        parsed = self._parsed
        units = parsed.get((kind, text))
        if units is None:
            units = convert(text)
            if len(parsed) >= 8192:
                parsed.clear()
            parsed[(kind, text)] = units
        return units

    def _price_to_ticks(self, value: object) -> int:
        price = to_decimal(value, "price")
        if price <= 0:
            raise Rejected("invalid_price", f"price {price} must be positive")
        ticks = price / self.tick_size
        if ticks != ticks.to_integral_value():
            raise Rejected("price_precision", f"price {price} is not a multiple of tick {self.tick_size}")
        return int(ticks)

    def _qty_to_lots(self, value: object) -> int:
        qty = to_decimal(value, "qty")
        if qty <= 0:
            raise Rejected("invalid_qty", f"qty {qty} must be positive")
        lots = qty / self.lot_size
        if lots != lots.to_integral_value():
            raise Rejected("qty_precision", f"qty {qty} is not a multiple of lot {self.lot_size}")
        return int(lots)

    def price(self, ticks: int) -> Decimal:
        return ticks * self.tick_size

    def qty(self, lots: int) -> Decimal:
        return lots * self.lot_size

    def notional(self, ticks: int, lots: int) -> Decimal:
        return from_cash(ticks * lots * self.cash_mult)


def _default(symbol: str, tick: str, lot: str) -> Instrument:
    base, quote = symbol.split("-")
    return Instrument(symbol, base, quote, Decimal(tick), Decimal(lot), min_qty=1, max_qty=10**9)


DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    _default("BTC-USD", "0.01", "0.001"),
    _default("ETH-USD", "0.01", "0.001"),
    _default("SOL-USD", "0.001", "0.01"),
)
