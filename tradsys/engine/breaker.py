"""The circuit breaker: halts an instrument whose price moves too far too fast."""

from collections import deque
from decimal import Decimal

from mypy_extensions import mypyc_attr

from tradsys.engine.clock import SECOND_NS
from tradsys.engine.limits import RiskLimits


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


def breaker_for(limits: RiskLimits, symbol: str, tripped: CircuitBreaker | None = None) -> CircuitBreaker:
    """A breaker set up from the symbol's limits as they are now; the halt of `tripped` carries over."""
    get = limits.get
    window, cooldown = get("breaker_window_s", None, symbol), get("breaker_cooldown_s", None, symbol)
    assert window is not None and cooldown is not None, "limits refuse None for these"
    breaker = CircuitBreaker(get("breaker_move_pct", None, symbol), window, cooldown)
    if tripped is not None:
        breaker.halted_until, breaker.tripped_ns, breaker.reason = tripped.halted_until, tripped.tripped_ns, tripped.reason
    return breaker
