"""The embedded default market: a simulated, always-on market on the daemon's own engine.

With no config and no network the daemon still has something to trade against: per symbol a
fair price (`RandomWalk`, or a `DataFeed` replaying a trades/bars file), liquidity providers
that keep a ladder of post-only quotes around it, and noise takers that trade against the book.

The market never touches the venue. Every tick the engine thread calls
`SimulatedMarket.step(now_ns, venue)`, which only *reads* the venue (books, open orders, last
price, positions, limits) and returns commands in the `tradsys.engine.commands` format; the
engine thread stamps them with `ts` and runs them through `commands.apply`, so they are
risk-checked and journaled like anyone's orders. Given the seed, the sequence of `now_ns` and
the venue state, the commands are always the same.

Ids and accounts: sim orders are `sim-<symbol>-<run>-<n>` (the daemon's own ids are pure digits;
`<run>` is the first step's time in base 36, so a restarted daemon does not reuse the ids
in its journal); accounts are `sim-lp-1..N` and `sim-taker`. At the first step the market
cancels open orders of its accounts that it does not know (left over from an earlier run).

Rates at the defaults (see tests/daemon/test_market.py): per symbol about 4 taker orders and
4 trades a second and ~33 venue events a second (most of them quote amends), ~90 commands a
second for the three symbols. Each provider quotes 5 levels a side, $20k at its touch growing
1.5x a level; the best bid and ask are ~2 bps apart.

Demo volatility: the volatilities are realistic annualised figures (BTC 60%, ETH 70%, SOL 90%)
multiplied by `vol_multiplier` (default 4), so a one-minute move is ~0.3% for BTC (about $200)
instead of ~0.08%: the price visibly moves while someone watches. A weak mean reversion of the
log price towards the start price (half-life one day) keeps a daemon left running for weeks
in a sensible range; set `reversion_half_life_s=None` for a pure random walk.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Mapping, Protocol, runtime_checkable

import polars as pl

from tradsys.data import MarketData, load_market_data
from tradsys.daemon.ids import run_tag
from tradsys.engine.commands import fmt
from tradsys.engine.instrument import Instrument, to_cash
from tradsys.engine.order import Order
from tradsys.engine.venue import Venue

__all__ = ["DEFAULT_SYMBOLS", "SimConfig", "PriceSource", "RandomWalk", "DataFeed", "SimulatedMarket"]

DEFAULT_SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
SECOND_NS = 1_000_000_000
YEAR_S = 365 * 86_400
SETUP_WAIT_STEPS = 100
"""The first steps return nothing until `setup_commands()` are in effect (the daemon may tick
before they are applied), but after this many steps the market starts anyway."""
BAND_MARGIN = 0.95
"""Quote at most this fraction of the venue's price band away from its reference price."""


def _dec_map(values: Mapping[str, object]) -> dict[str, Decimal]:
    return {k: Decimal(str(v)) for k, v in values.items()}


@dataclass
class SimConfig:
    """Every knob of the simulated market. Notionals are in each instrument's quote currency."""

    seed: int = 7
    symbols: tuple[str, ...] | None = None
    """None: the data's symbols with a `DataFeed`, else BTC-USD, ETH-USD and SOL-USD; either way only
    those the venue lists. Named explicitly, every one must be an instrument of the venue."""
    start_prices: dict[str, Decimal] = field(
        default_factory=lambda: _dec_map({"BTC-USD": "60000", "ETH-USD": "3000", "SOL-USD": "150"})
    )
    volatility: dict[str, float] = field(default_factory=lambda: {"BTC-USD": 0.60, "ETH-USD": 0.70, "SOL-USD": 0.90})
    """Realistic annualised volatility of the fair price per symbol."""
    vol_multiplier: float = 4.0
    """'Demo volatility': the volatilities above are scaled by this (1.0 = realistic)."""
    reversion_half_life_s: float | None = 86_400.0
    """Mean reversion of the log fair price towards the start price; None = pure random walk."""
    max_gap_s: float = 5.0
    """A pause longer than this (daemon suspended) moves the fair price as if only this had passed."""

    lp_accounts: int = 2
    levels: int = 5
    """Quote levels per side per liquidity provider."""
    spread_bps: float = 2.0
    """Full spread of the tightest provider's best bid and ask around the fair price."""
    level_spacing_bps: float = 1.5
    """Distance between a provider's levels; provider i also sits i/N of a spacing further out."""
    level_notional: float = 20_000.0
    """Size of a touch level; deeper levels grow by `level_growth` each."""
    level_growth: float = 1.5
    size_jitter: float = 0.3
    """Sizes vary uniformly by +-this fraction, so the book does not look machine-made."""
    requote_bps: float = 2.0
    """Move a quote when it is more than this x (1 + level) away from its target price."""
    skew_bps: float = 2.0
    """Quotes shift by up to this against the provider's inventory (long -> lower)."""
    inventory_limit: float = 250_000.0
    """Inventory notional at which the skew is full."""

    taker_rate: float = 4.0
    """Noise taker orders per second per symbol (Poisson arrivals). The daemon's `[market] taker_rate`;
    raise it for a busier market (tests and soaks that need many trades in little time)."""
    taker_notional_median: float = 1_500.0
    taker_notional_sigma: float = 1.0
    """Taker order notional is log-normal: median x exp(sigma x N(0,1)), capped at the max."""
    taker_notional_max: float = 50_000.0
    market_fraction: float = 0.3
    """Share of taker orders sent as market orders; the rest are IOC limits just through the touch."""
    taker_slippage_bps: float = 3.0
    """An IOC limit reaches up to this far through the touch (uniformly drawn)."""
    taker_catch_up_s: float = 1.25
    """After a pause, one step sends at most this many seconds' worth of taker arrivals (5 at the
    default rate); the rest are dropped, not caught up."""
    max_cancels_per_step: int = 200
    """Cleanup of orders left by an earlier run is spread over steps in batches of this size."""

    deposit: Decimal = Decimal(1_000_000_000)
    """Extra cash each sim account gets per quote currency (positions are fully margined)."""
    account_prefix: str = "sim"

    @property
    def max_takers_per_step(self) -> int:
        """The cap on taker orders per symbol in one step; it scales with `taker_rate`."""
        return max(1, math.ceil(self.taker_rate * self.taker_catch_up_s))


# -- price sources --------------------------------------------------------------------------


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


# -- the market -------------------------------------------------------------------------------


class _Slot:
    """One quote of one provider: side and level, and the id of its live order (if any)."""

    __slots__ = ("lp", "buy", "level", "id")

    def __init__(self, lp: int, buy: bool, level: int) -> None:
        self.lp = lp
        self.buy = buy
        self.level = level
        self.id: str | None = None


class _Symbol:
    __slots__ = ("symbol", "inst", "tick", "lot", "rng", "slots", "next_arrival")

    def __init__(self, symbol: str, inst: Instrument, rng: random.Random, config: SimConfig) -> None:
        self.symbol = symbol
        self.inst = inst
        self.tick = float(inst.tick_size)
        self.lot = float(inst.lot_size)
        self.rng = rng
        self.slots = [
            _Slot(lp, buy, level)
            for level in range(config.levels)
            for lp in range(config.lp_accounts)
            for buy in (True, False)
        ]
        self.next_arrival: int | None = None


class SimulatedMarket:
    """Liquidity providers and noise takers for `symbols`, around `source`'s fair prices.

    `setup_commands()` once at start (limits lifted and cash for the sim accounts), then
    `step(now_ns, venue)` every tick; steps return nothing until the setup is in effect (for at
    most SETUP_WAIT_STEPS steps), so the first quotes never meet the default account limits.
    Commands per step are bounded: at most
    2 x lp_accounts x levels quote commands plus `max_takers_per_step` takers per symbol,
    plus (first steps after a restart only) `max_cancels_per_step` cleanup cancels.
    """

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        config: SimConfig | None = None,
        source: PriceSource | None = None,
    ) -> None:
        self.config = config = config or SimConfig()
        if config.symbols is not None:
            unknown = [s for s in config.symbols if s not in instruments]
            if unknown:
                raise ValueError(
                    f"simulated market: unknown symbol(s) {', '.join(unknown)}; venue has {', '.join(instruments)}"
                )
            symbols = tuple(config.symbols)
        else:
            wanted = tuple(getattr(source, "symbols", None) or DEFAULT_SYMBOLS)
            symbols = tuple(s for s in wanted if s in instruments)
            if not symbols:
                raise ValueError(f"simulated market: none of {', '.join(wanted)} is an instrument of the venue")
        if config.lp_accounts < 1 or config.levels < 1:
            raise ValueError("simulated market needs at least one liquidity provider and one level")
        self.symbols = symbols
        self.source: PriceSource = source if source is not None else RandomWalk.from_config(config, symbols)
        self._value = getattr(self.source, "value", None)
        prefix = config.account_prefix
        self.lp_accounts = tuple(f"{prefix}-lp-{i + 1}" for i in range(config.lp_accounts))
        self.taker_account = f"{prefix}-taker"
        self.accounts = (*self.lp_accounts, self.taker_account)
        self._symbols = [
            _Symbol(s, instruments[s], random.Random(f"{config.seed}/{s}/flow"), config) for s in symbols
        ]
        self._live: set[str] = set()
        self._cleanup: list[str] | None = None
        self._run = ""
        self._n = 0
        self.stats: dict[str, int] = {"new": 0, "amend": 0, "cancel": 0, "taker": 0, "steps": 0}

    # -- public ----------------------------------------------------------------------------

    def setup_commands(self) -> list[dict]:
        """Admin commands to run once before the first step: the sim accounts trade without
        per-account limits (rate, notional, position, daily loss) and with ample cash. The
        price band and circuit breakers still apply to them."""
        out: list[dict] = []
        quotes = list(dict.fromkeys(s.inst.quote for s in self._symbols))
        for account in self.accounts:
            for key in ("max_orders_per_second", "max_order_notional", "max_position", "daily_loss_limit"):
                out.append({"op": "limit", "key": key, "value": None, "account": account})
            for ccy in quotes:
                out.append({"op": "deposit", "account": account, "currency": ccy, "amount": fmt(self.config.deposit)})
        return out

    def owns(self, order_id: str) -> bool:
        """Whether `order_id` is one of this market's orders (quotes or takers)."""
        return order_id.startswith(self.config.account_prefix + "-")

    def step(self, now_ns: int, venue: Venue) -> list[dict]:
        """Commands for this tick. Reads the venue, never changes it."""
        out: list[dict] = []
        self.stats["steps"] += 1
        if self._cleanup is None:
            if not self._ready(venue) and self.stats["steps"] <= SETUP_WAIT_STEPS:
                return out
            self._start(now_ns, venue)
        if self._cleanup:
            cap = self.config.max_cancels_per_step
            batch, self._cleanup = self._cleanup[:cap], self._cleanup[cap:]
            for oid in batch:
                order = venue.orders.get(oid)
                if order is not None:
                    out.append({"op": "cancel", "id": oid, "account": order.account})
            self.stats["cancel"] += len(out)
        for st in self._symbols:
            fair = self._fair(st, now_ns)
            if fair is None or not fair > 0 or not math.isfinite(fair):
                continue
            halted = st.symbol in venue.halted or venue.breakers[st.symbol].halted_until > max(now_ns, venue.now)
            if halted or venue.kill_switch:
                st.next_arrival = None  # no burst of takers when trading resumes
                continue
            best_bid, best_ask = self._quote(st, fair, venue, out)
            self._take(st, fair, now_ns, venue, best_bid, best_ask, out)
        return out

    # -- internals -------------------------------------------------------------------------

    def _ready(self, venue: Venue) -> bool:
        """Whether `setup_commands()` are in effect: limits lifted and cash deposited."""
        quotes = {s.inst.quote for s in self._symbols}
        deposit = to_cash(self.config.deposit)
        for account in self.accounts:
            acct = venue.accounts.get(account)
            if acct is None or venue.limits.get("max_order_notional", account) is not None:
                return False
            for ccy in quotes:
                wallet = acct.wallets.get(ccy)
                if wallet is None or wallet.balance < deposit:
                    return False
        return True

    def _start(self, now_ns: int, venue: Venue) -> None:
        self._run = run_tag(now_ns)
        accounts = set(self.accounts)
        self._cleanup = [oid for oid, o in venue.orders.items() if o.account in accounts]
        anchor = getattr(self.source, "anchor", None)
        if anchor is not None:
            for st in self._symbols:
                last = venue.last.get(st.symbol)
                if last is not None:
                    anchor(st.symbol, st.inst.price(last))

    def _fair(self, st: _Symbol, now_ns: int) -> float | None:
        if self._value is not None:
            return self._value(st.symbol, now_ns)
        price = self.source.price(st.symbol, now_ns)
        return None if price is None else float(price)

    def _next_id(self, symbol: str) -> str:
        self._n += 1
        return f"{self.config.account_prefix}-{symbol}-{self._run}-{self._n}"

    def _lots(self, st: _Symbol, notional: float, fair: float) -> int:
        inst = st.inst
        lots = int(round(notional / (fair * st.lot)))
        return min(max(lots, inst.min_qty, 1), inst.max_qty)

    def _quote(self, st: _Symbol, fair: float, venue: Venue, out: list[dict]) -> tuple[int | None, int | None]:
        """Keep every provider's ladder near its target; returns the best bid/ask after these commands."""
        cfg = self.config
        inst, symbol = st.inst, st.symbol
        fair_t = fair / st.tick
        ref = venue.reference_price(symbol)
        orders = venue.orders
        live = self._live
        n_lps = cfg.lp_accounts

        # (slot, target price in ticks, its live order or None, band low, band high)
        retreat: list[tuple[_Slot, int, Order | None, int, int | None]] = []
        advance: list[tuple[_Slot, int, Order | None, int, int | None]] = []
        sim_bid = sim_ask = None  # best sim prices once the retreats are done
        for lp in range(n_lps):
            account = self.lp_accounts[lp]
            lo, hi = _band(venue, account, inst, ref)
            acct = venue.accounts.get(account)
            pos = acct.positions.get(symbol) if acct is not None else None
            center = fair_t
            if pos is not None and pos.qty and cfg.skew_bps:
                inv = pos.qty * st.lot * fair / cfg.inventory_limit
                center *= 1.0 - max(-1.0, min(1.0, inv)) * cfg.skew_bps / 10_000
            for slot in st.slots:
                if slot.lp != lp:
                    continue
                dist = cfg.spread_bps / 2 + cfg.level_spacing_bps * (slot.level + lp / n_lps)
                if slot.buy:
                    target = math.floor(center * (1.0 - dist / 10_000))
                else:
                    target = math.ceil(center * (1.0 + dist / 10_000))
                if target < lo:
                    target = lo
                elif hi is not None and target > hi:
                    target = hi
                order = orders.get(slot.id) if slot.id is not None else None
                if order is None:
                    if slot.id is not None:
                        live.discard(slot.id)
                        slot.id = None
                    advance.append((slot, target, None, lo, hi))
                    continue
                current = order.price
                threshold = max(1.0, fair_t * cfg.requote_bps * (1 + slot.level) / 10_000)
                if abs(target - current) > threshold:
                    if (target < current) == slot.buy:  # bid down / ask up: away from the other side
                        retreat.append((slot, target, order, lo, hi))
                        current = target
                    else:
                        advance.append((slot, target, order, lo, hi))
                if slot.buy:
                    if sim_bid is None or current > sim_bid:
                        sim_bid = current
                elif sim_ask is None or current < sim_ask:
                    sim_ask = current

        for slot, target, order, _, _ in retreat:
            out.append(self._amend(st, slot, target, fair))

        # best prices once the retreats are in: ours, or others' inside them (post-only must not cross either)
        book = venue.books[symbol]
        best_ask = sim_ask
        for price, level in book.asks.items():
            if (best_ask is None or price < best_ask) and any(oid not in live for oid in level.live):
                best_ask = price
        best_bid = sim_bid
        for price, level in book.bids.items():
            if (best_bid is None or price > best_bid) and any(oid not in live for oid in level.live):
                best_bid = price

        advance.sort(key=lambda item: item[0].level)
        for slot, target, order, lo, hi in advance:
            if slot.buy:
                price = target if best_ask is None else min(target, best_ask - 1)
                if price < lo:
                    continue  # squeezed out of the band by someone's ask: sit this one out
                if best_bid is None or price > best_bid:
                    best_bid = price
            else:
                price = target if best_bid is None else max(target, best_bid + 1)
                if hi is not None and price > hi:
                    continue
                if best_ask is None or price < best_ask:
                    best_ask = price
            if order is None:
                oid = slot.id = self._next_id(symbol)
                live.add(oid)
                out.append({
                    "op": "new", "id": oid, "account": self.lp_accounts[slot.lp], "symbol": symbol,
                    "side": "buy" if slot.buy else "sell", "type": "limit",
                    "price": fmt(inst.price(price)), "qty": self._level_qty(st, slot, fair),
                    "tif": "GTC", "post_only": True,
                })
                self.stats["new"] += 1
            elif price != order.price:
                out.append(self._amend(st, slot, price, fair))
        return best_bid, best_ask

    def _level_qty(self, st: _Symbol, slot: _Slot, fair: float) -> str:
        cfg = self.config
        jitter = 1.0 + cfg.size_jitter * (2.0 * st.rng.random() - 1.0)
        return fmt(st.inst.qty(self._lots(st, cfg.level_notional * cfg.level_growth ** slot.level * jitter, fair)))

    def _amend(self, st: _Symbol, slot: _Slot, price: int, fair: float) -> dict:
        """Move a quote (and refresh its size); a price change sends it to the back of the queue."""
        self.stats["amend"] += 1
        return {
            "op": "amend", "id": slot.id, "account": self.lp_accounts[slot.lp],
            "price": fmt(st.inst.price(price)), "qty": self._level_qty(st, slot, fair),
        }

    def _take(
        self, st: _Symbol, fair: float, now_ns: int, venue: Venue, best_bid: int | None, best_ask: int | None,
        out: list[dict],
    ) -> None:
        cfg = self.config
        if cfg.taker_rate <= 0:
            return
        rng = st.rng
        mean_gap = SECOND_NS / cfg.taker_rate
        if st.next_arrival is None:
            st.next_arrival = now_ns + int(rng.expovariate(1.0) * mean_gap)
            return
        inst, symbol = st.inst, st.symbol
        fair_t = fair / st.tick
        lo, hi = _band(venue, self.taker_account, inst, venue.reference_price(symbol))
        fired = 0
        while st.next_arrival <= now_ns and fired < cfg.max_takers_per_step:
            st.next_arrival += max(1, int(rng.expovariate(1.0) * mean_gap))
            fired += 1
            buy = rng.random() < 0.5
            size = cfg.taker_notional_median * math.exp(cfg.taker_notional_sigma * rng.gauss(0.0, 1.0))
            notional = min(cfg.taker_notional_max, size)
            qty = fmt(inst.qty(self._lots(st, notional, fair)))
            market = rng.random() < cfg.market_fraction
            slip = int(rng.random() * cfg.taker_slippage_bps * fair_t / 10_000)
            touch = best_ask if buy else best_bid
            if touch is None:
                continue  # nothing to take on that side
            cmd = {"op": "new", "id": self._next_id(symbol), "account": self.taker_account, "symbol": symbol,
                   "side": "buy" if buy else "sell"}
            if market:
                cmd.update(type="market", qty=qty, tif="IOC")
            else:
                price = touch + slip if buy else touch - slip
                price = max(price, lo) if hi is None else min(max(price, lo), hi)
                cmd.update(type="limit", price=fmt(inst.price(price)), qty=qty, tif="IOC")
            out.append(cmd)
            self.stats["taker"] += 1
        if st.next_arrival <= now_ns:  # a long pause: drop the backlog instead of bursting
            st.next_arrival = now_ns + int(rng.expovariate(1.0) * mean_gap)


def _band(venue: Venue, account: str, inst: Instrument, ref: int | None) -> tuple[int, int | None]:
    """Lowest and highest price (ticks) `account` may quote: inside the venue's price band, with a margin."""
    if ref is None:
        return 1, None
    band = venue.limits.resolved(account, inst).band_ppm
    if band is None:
        return 1, None
    reach = ref * band * BAND_MARGIN / 1_000_000
    return max(1, math.ceil(ref - reach)), math.floor(ref + reach)
