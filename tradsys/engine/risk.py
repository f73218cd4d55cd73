"""Pre-trade risk: limits as data, circuit breakers, halts and the kill switch.

Limits are set at four scopes, most specific first: account+symbol, account, symbol, global.
The engine works on integer units, so each (account, symbol) pair gets its limits resolved
and converted once and cached until the next change.
"""

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from mypy_extensions import mypyc_attr

from tradsys.engine.errors import Rejected
from tradsys.engine.instrument import CASH_SCALE, Instrument, to_decimal

SECOND_NS: Final = 1_000_000_000

DEFAULT_LIMITS: dict[str, Decimal | None] = {
    "max_order_notional": Decimal(1_000_000),
    "max_position": None,
    "price_band_pct": Decimal(5),
    "max_orders_per_second": Decimal(1000),
    "daily_loss_limit": None,
    "breaker_move_pct": Decimal(10),
    "breaker_window_s": Decimal(60),
    "breaker_cooldown_s": Decimal(60),
}
"""Every limit a user can set, with its default; None means no limit."""

LIMIT_DOCS: dict[str, str] = {
    "max_order_notional": "largest notional of one order, in the quote currency",
    "max_position": "largest absolute position per instrument, counting open orders, in base units",
    "price_band_pct": "limit prices more than this % away from the last trade (or mid) are refused",
    "max_orders_per_second": "new orders and amends per account per engine-clock second",
    "daily_loss_limit": "realized loss net of fees per account per UTC day after which new orders are refused",
    "breaker_move_pct": "a move larger than this % within the window halts the instrument",
    "breaker_window_s": "circuit breaker look-back window in seconds",
    "breaker_cooldown_s": "how long a tripped circuit breaker halts the instrument",
}

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


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class CircuitBreaker:
    """Halts an instrument when its trade prices within a rolling window span more than a limit.

    The window is kept as ten buckets of a tenth of the window each, with the low and high of
    each; a trade inside the current range costs two comparisons. The window's edge is thus
    exact to a tenth of its length.
    """

    __slots__ = (
        "move_ppm", "window_ns", "cooldown_ns", "_bucket_ns", "_buckets", "_bucket", "_low", "_high",
        "halted_until", "tripped_ns", "reason",
    )

    def __init__(self, move_pct: Decimal | None, window_s: Decimal, cooldown_s: Decimal) -> None:
        self.move_ppm = None if move_pct is None else int(move_pct * 10_000)
        self.window_ns = int(window_s * SECOND_NS)
        self.cooldown_ns = int(cooldown_s * SECOND_NS)
        self._bucket_ns = max(1, self.window_ns // 10)
        self._buckets: deque[list[int]] = deque()
        """[bucket index, low, high] per bucket that saw a trade, oldest first."""
        self._bucket = -1
        self._low = 0
        self._high = 0
        self.halted_until = 0
        self.tripped_ns = 0
        self.reason = ""

    def on_trade(self, ts: int, price: int) -> bool:
        """Record a trade; True when it trips the breaker."""
        if self.move_ppm is None:
            return False
        index = ts // self._bucket_ns
        if index == self._bucket:
            bucket = self._buckets[-1]
            if price < bucket[1]:
                bucket[1] = price
            elif price > bucket[2]:
                bucket[2] = price
            else:
                return False
            if self._low <= price <= self._high:
                return False
        else:
            buckets = self._buckets
            buckets.append([index, price, price])
            self._bucket = index
            oldest = index - 10
            while buckets[0][0] <= oldest:
                buckets.popleft()
            self._low = min(b[1] for b in buckets)
            self._high = max(b[2] for b in buckets)
        if price < self._low:
            self._low = price
        elif price > self._high:
            self._high = price
        low, high = self._low, self._high
        if (high - low) * 1_000_000 > low * self.move_ppm:
            self.tripped_ns = ts
            self.halted_until = ts + self.cooldown_ns
            self.reason = f"moved {(high - low) * 100 / low:.2f}% within {self.window_ns / SECOND_NS:g}s"
            self._buckets.clear()
            self._bucket = -1
            return True
        return False

    def is_open(self, now: int) -> bool:
        """'Open' as in an open circuit: trading is halted."""
        return now < self.halted_until
