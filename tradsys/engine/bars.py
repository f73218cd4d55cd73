"""OHLCV bars aggregated from trades, for many symbols and intervals at once.

Bars are aligned to multiples of their interval since the Unix epoch (UTC), so
a "1d" bar is a UTC calendar day and bars from different feeds line up.

Empty intervals produce no bars: a symbol that does not trade for a while has
a gap in its history rather than synthetic flat bars, because a flat bar would
claim a price that nobody traded at. Consumers that need a dense series can
fill gaps themselves from the previous close.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tradsys.durations import NANOS, DurationError, grammar, parse_ns

_UNIT_NS = {unit: NANOS[unit] for unit in ("d", "h", "m", "s")}
"""The units `format_interval` writes, largest first."""


def parse_interval(text: str) -> int:
    """Parse "5m"-style text (a whole count of a unit, see `tradsys.durations`) into nanoseconds.

    A bar lasts a positive whole number of seconds; counts are written without a leading zero so
    that an interval has one spelling per unit."""
    try:
        ns = parse_ns(text, whole=True)
    except DurationError:
        ns = 0
    if ns <= 0 or ns % NANOS["s"]:
        raise ValueError(
            f"invalid interval {text!r}: expected a positive whole number of seconds, written as {grammar(whole=True)}"
        )
    return ns


def format_interval(ns: int) -> str:
    """Inverse of parse_interval, in the largest unit that divides evenly."""
    if ns > 0:
        for unit, unit_ns in _UNIT_NS.items():
            if ns % unit_ns == 0:
                return f"{ns // unit_ns}{unit}"
    raise ValueError(f"interval of {ns} ns is not a positive whole number of seconds")


@dataclass(slots=True)
class Bar:
    """One interval of trading; prices in ticks, volume in lots."""

    symbol: str
    interval_ns: int
    start_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    trades: int


class _Series:
    """Open bar and closed history of one (symbol, interval)."""

    __slots__ = ("interval_ns", "bar", "end_ns", "history")

    def __init__(self, interval_ns: int, end_ns: int, keep: int) -> None:
        self.interval_ns = interval_ns
        self.bar: Bar | None = None
        # End of the open bar; with no open bar, the earliest start a new bar
        # may take, so ended intervals are never reopened.
        self.end_ns = end_ns
        self.history: deque[Bar] = deque(maxlen=keep)


class BarAggregator:
    """Builds bars of several intervals for every symbol it sees.

    A bar closes when a trade lands at or after its end, or when `advance`
    moves the clock past its end. A closed bar is final: a late trade (earlier
    than the open bar's start) is added to the open bar, and after `advance`
    a late trade goes to the earliest interval that has not yet ended. So each
    (symbol, interval) history has strictly increasing starts, never duplicates.
    """

    def __init__(self, intervals: Sequence[int], keep: int = 1000) -> None:
        if len(intervals) == 0:
            raise ValueError("at least one interval is required")
        if len(set(intervals)) != len(intervals):
            raise ValueError(f"duplicate intervals in {list(intervals)}")
        for interval_ns in intervals:
            if interval_ns <= 0:
                raise ValueError(f"interval must be positive, got {interval_ns} ns")
        if keep < 0:
            raise ValueError(f"keep must be non-negative, got {keep}")
        self._intervals = tuple(intervals)
        self._index = {interval_ns: i for i, interval_ns in enumerate(self._intervals)}
        self._keep = keep
        self._series: dict[str, list[_Series]] = {}
        self._clock_ns: int | None = None

    def on_trade(self, symbol: str, ts_ns: int, price: int, qty: int) -> list[Bar]:
        """Add a trade; return the bars it closed, in constructor interval order."""
        series = self._series.get(symbol)
        if series is None:
            series = self._add_symbol(symbol, ts_ns)
        closed: list[Bar] = []
        for s in series:
            bar = s.bar
            if bar is not None:
                if ts_ns < s.end_ns:
                    # Hot path: update in place, no new Bar.
                    if price > bar.high:
                        bar.high = price
                    elif price < bar.low:
                        bar.low = price
                    bar.close = price
                    bar.volume += qty
                    bar.trades += 1
                    continue
                s.history.append(bar)
                closed.append(bar)
            interval_ns = s.interval_ns
            start_ns = ts_ns - ts_ns % interval_ns
            if start_ns < s.end_ns:
                start_ns = s.end_ns
            s.bar = Bar(symbol, interval_ns, start_ns, price, price, price, price, qty, 1)
            s.end_ns = start_ns + interval_ns
        return closed

    def advance(self, ts_ns: int) -> list[Bar]:
        """Close every open bar that has ended by ts_ns; return them.

        For when the engine clock moves without trades. Moving backwards is a no-op.
        """
        if self._clock_ns is not None and ts_ns <= self._clock_ns:
            return []
        self._clock_ns = ts_ns
        closed: list[Bar] = []
        for series in self._series.values():
            for s in series:
                bar = s.bar
                if bar is not None:
                    if ts_ns < s.end_ns:
                        continue
                    s.history.append(bar)
                    closed.append(bar)
                    s.bar = None
                floor_ns = ts_ns - ts_ns % s.interval_ns
                if floor_ns > s.end_ns:
                    s.end_ns = floor_ns
        return closed

    def current(self, symbol: str, interval_ns: int) -> Bar | None:
        """A snapshot of the open (partial) bar, or None if there is none."""
        s = self._find(symbol, interval_ns)
        if s is None or s.bar is None:
            return None
        return replace(s.bar)

    def history(self, symbol: str, interval_ns: int) -> list[Bar]:
        """Closed bars, oldest first, at most `keep` of them."""
        s = self._find(symbol, interval_ns)
        return [] if s is None else list(s.history)

    def _find(self, symbol: str, interval_ns: int) -> _Series | None:
        i = self._index.get(interval_ns)
        if i is None:
            raise KeyError(f"interval {interval_ns} ns is not aggregated")
        series = self._series.get(symbol)
        return None if series is None else series[i]

    def _add_symbol(self, symbol: str, ts_ns: int) -> list[_Series]:
        # A symbol first seen after `advance` must not open an interval the
        # clock has already ended.
        origin_ns = ts_ns if self._clock_ns is None else self._clock_ns
        series = [
            _Series(interval_ns, origin_ns - origin_ns % interval_ns, self._keep)
            for interval_ns in self._intervals
        ]
        self._series[symbol] = series
        return series
