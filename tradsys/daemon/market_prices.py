"""Fair prices for the simulated market: a seeded random walk, or a trades/bars file replayed.

A `PriceSource` answers the fair price of a symbol at a wall time; the market quotes around it.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Mapping, Protocol, runtime_checkable

import polars as pl

from tradsys.data import MarketData, load_market_data
from tradsys.daemon.market_config import DEFAULT_SYMBOLS, SimConfig

SECOND_NS = 1_000_000_000
YEAR_S = 365 * 86_400


@runtime_checkable
class PriceSource(Protocol):
    def price(self, symbol: str, now_ns: int) -> Decimal | None:
        """The fair price of `symbol` at wall time `now_ns`, or None while it has none."""
        ...


class _Walk:
    __slots__ = ("p0", "x", "last_ns", "sigma", "rng")

    def __init__(self, p0: float, sigma: float, rng: random.Random) -> None:
        self.p0 = p0
        self.x = 0.0
        self.last_ns: int | None = None
        self.sigma = sigma
        self.rng = rng


class RandomWalk:
    """Jump-free log random walk per symbol, stepped by elapsed time (exact for any step size).

    `sigma` per symbol is annual volatility x `vol_multiplier`; with a half-life the log price is
    an Ornstein-Uhlenbeck process around log(start). Each symbol has its own seeded generator,
    so one symbol's path does not depend on whether another was asked for.
    """

    def __init__(
        self,
        start: Mapping[str, object],
        volatility: Mapping[str, float],
        seed: int = 7,
        vol_multiplier: float = 1.0,
        reversion_half_life_s: float | None = None,
        max_gap_s: float = 5.0,
    ) -> None:
        self.theta = None if not reversion_half_life_s else math.log(2) / reversion_half_life_s
        self.max_gap_s = max_gap_s
        self._walks: dict[str, _Walk] = {}
        for symbol, p0 in start.items():
            p = float(Decimal(str(p0)))
            if not p > 0 or not math.isfinite(p):
                raise ValueError(f"{symbol}: start price must be positive, got {p0}")
            vol = volatility.get(symbol)
            if vol is None:
                raise ValueError(f"{symbol}: no volatility given")
            sigma = vol * vol_multiplier / math.sqrt(YEAR_S)
            self._walks[symbol] = _Walk(p, sigma, random.Random(f"{seed}/{symbol}/walk"))

    @classmethod
    def from_config(cls, config: SimConfig, symbols: tuple[str, ...] | None = None) -> RandomWalk:
        symbols = symbols or config.symbols or DEFAULT_SYMBOLS
        missing = [s for s in symbols if s not in config.start_prices or s not in config.volatility]
        if missing:
            raise ValueError(
                f"no start price or volatility for {', '.join(missing)}; set SimConfig.start_prices/volatility"
            )
        return cls(
            {s: config.start_prices[s] for s in symbols},
            config.volatility,
            config.seed,
            config.vol_multiplier,
            config.reversion_half_life_s,
            config.max_gap_s,
        )

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._walks)

    def anchor(self, symbol: str, price: object) -> None:
        """Continue the walk from `price` (e.g. the venue's last trade after a restart)."""
        walk = self._walks.get(symbol)
        if walk is not None:
            walk.x = math.log(float(Decimal(str(price))) / walk.p0)

    def value(self, symbol: str, now_ns: int) -> float | None:
        walk = self._walks.get(symbol)
        if walk is None:
            return None
        if walk.last_ns is None:
            walk.last_ns = now_ns
        elif now_ns > walk.last_ns:
            dt = min((now_ns - walk.last_ns) / SECOND_NS, self.max_gap_s)
            walk.last_ns = now_ns
            z = walk.rng.gauss(0.0, 1.0)
            theta = self.theta
            if theta is None:
                walk.x += walk.sigma * math.sqrt(dt) * z
            else:
                decay = math.exp(-theta * dt)
                walk.x = walk.x * decay + walk.sigma * math.sqrt((1.0 - decay * decay) / (2.0 * theta)) * z
        return walk.p0 * math.exp(walk.x)

    def price(self, symbol: str, now_ns: int) -> Decimal | None:
        value = self.value(symbol, now_ns)
        return None if value is None else Decimal(repr(value))


class _Track:
    """One symbol's rows, read forward in chunks of plain Python lists (cheap per step, small memory)."""

    __slots__ = ("frame", "n", "kind", "chunk", "base", "ts", "cols", "i", "end_ns", "t")

    def __init__(self, frame: pl.DataFrame, kind: str, chunk: int) -> None:
        self.frame = frame
        self.n = frame.height
        self.kind = kind
        self.chunk = max(2, chunk)
        self.i = 0
        self.t = -(2**63)
        self.base = -1
        self.ts: list[int] = []
        self.cols: list[list[float]] = []
        last = frame.row(self.n - 1, named=True)
        self.end_ns = int(last["ts"] + (last["dur"] if kind == "bars" else 0))
        self._load(0)

    def _load(self, start: int) -> None:
        part = self.frame.slice(start, self.chunk)
        self.base = start
        self.ts = part.get_column("ts").to_list()
        names = ("open", "a", "b", "close", "dur") if self.kind == "bars" else ("price",)
        self.cols = [part.get_column(c).to_list() for c in names]

    def value(self, t: int) -> float | None:
        if t < self.t:
            t = self.t  # time does not run backwards
        self.t = t
        if t < self.ts[0] and self.base == 0:
            return None
        # find the last row with ts <= t, moving only forward
        while True:
            hi = self.base + len(self.ts)
            j = _bisect_right(self.ts, t, self.i - self.base) - 1 + self.base
            if j < hi - 1 or hi >= self.n:
                break
            self._load(hi - 1)  # the last row may be the one; the new chunk starts with it
            self.i = hi - 1
        self.i = max(self.i, j)
        k = self.i - self.base
        if self.kind == "trades":
            return self.cols[0][k]
        open_, a, b, close, dur = (c[k] for c in self.cols)
        frac = (t - self.ts[k]) / dur if dur > 0 else 1.0
        if frac >= 1.0:
            return close
        # open -> a (at 1/4) -> b (at 3/4) -> close (at the end): a, b = low, high for an up bar
        if frac < 0.25:
            return open_ + (a - open_) * frac * 4.0
        if frac < 0.75:
            return a + (b - a) * (frac - 0.25) * 2.0
        return b + (close - b) * (frac - 0.75) * 4.0


def _bisect_right(values: list[int], x: int, lo: int) -> int:
    hi = len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < values[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


class DataFeed:
    """Fair prices replayed from trades or bars (see `tradsys.data`).

    Data time maps to wall time as `start_ns + (data_ts - first_ts) / speed`, where `first_ts`
    is the earliest row of the whole file (symbols stay aligned) and `start_ns` defaults to the
    first `now_ns` asked for. Trades give a step function (the last trade so far). Bars are
    walked open -> low -> high -> close for an up bar (open -> high -> low -> close for a down
    bar), linearly, reaching low/high at 1/4 and 3/4 of the bar and the close at its end; a
    bar lasts until the next one but no longer than the usual bar interval (gaps hold the close).
    Before a symbol's first row its price is None; after the data ends (`done`) it holds the last.
    """

    def __init__(
        self,
        data: MarketData | str | Path | pl.DataFrame | pl.LazyFrame,
        speed: float = 1.0,
        start_ns: int | None = None,
        symbol: str | None = None,
        chunk: int = 4096,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        md = data if isinstance(data, MarketData) else load_market_data(data, symbol=symbol)
        self.kind = md.kind
        self.speed = speed
        self.start_ns = start_ns
        self.first_ts: int = md.start_ns if md.start_ns is not None else 0
        self.symbols = md.symbols
        self._now = start_ns
        frame = md.collect()
        self._tracks: dict[str, _Track] = {}
        for (sym,), part in frame.partition_by("symbol", as_dict=True, maintain_order=True).items():
            if md.kind == "bars":
                gap = pl.col("ts").shift(-1) - pl.col("ts")
                part = part.with_columns(gap.alias("dur"))
                usual = part.get_column("dur").median()
                usual = int(usual) if usual is not None and usual > 0 else 60 * SECOND_NS
                up = pl.col("close") >= pl.col("open")
                part = part.select(
                    "ts",
                    "open",
                    pl.when(up).then(pl.col("low")).otherwise(pl.col("high")).alias("a"),
                    pl.when(up).then(pl.col("high")).otherwise(pl.col("low")).alias("b"),
                    "close",
                    pl.col("dur").fill_null(usual).clip(upper_bound=usual).cast(pl.Float64),
                )
            else:
                part = part.select("ts", "price")
            self._tracks[sym] = _Track(part, md.kind, chunk)
        self.end_ts = max(t.end_ns for t in self._tracks.values())

    def data_ts(self, now_ns: int) -> int:
        """The data time shown at wall time `now_ns` (fixes `start_ns` on first use)."""
        if self.start_ns is None:
            self.start_ns = now_ns
        self._now = now_ns if self._now is None else max(self._now, now_ns)
        return self.first_ts + int(max(0, now_ns - self.start_ns) * self.speed)

    @property
    def done(self) -> bool:
        """True once wall time has passed the end of the data; prices then hold their last value."""
        return self._now is not None and self.data_ts(self._now) >= self.end_ts

    def value(self, symbol: str, now_ns: int) -> float | None:
        track = self._tracks.get(symbol)
        if track is None:
            return None
        return track.value(self.data_ts(now_ns))

    def price(self, symbol: str, now_ns: int) -> Decimal | None:
        value = self.value(symbol, now_ns)
        return None if value is None else Decimal(repr(value))
