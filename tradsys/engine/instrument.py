"""Instruments and the conversions between decimal edge values and integer ticks/lots."""

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


def _parse_steps(value: object, what: str, step: Decimal, step_name: str) -> int:
    """A positive edge value as a whole number of steps: ticks of a price, lots of a quantity."""
    number = to_decimal(value, what)
    if number <= 0:
        raise Rejected(f"invalid_{what}", f"{what} {number} must be positive")
    steps = number / step
    if steps != steps.to_integral_value():
        raise Rejected(f"{what}_precision", f"{what} {number} is not a multiple of {step_name} {step}")
    return int(steps)


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
        return self._steps(value, "price", self.tick_size, "tick")

    def qty_to_lots(self, value: object) -> int:
        return self._steps(value, "qty", self.lot_size, "lot")

    def _steps(self, value: object, what: str, step: Decimal, step_name: str) -> int:
        """`_parse_steps`, memoised for text (see `_parsed`)."""
        if type(value) is not str:
            return _parse_steps(value, what, step, step_name)
        parsed = self._parsed
        steps = parsed.get((what, value))
        if steps is None:
            steps = _parse_steps(value, what, step, step_name)
            if len(parsed) >= 8192:
                parsed.clear()
            parsed[(what, value)] = steps
        return steps

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
