"""The knobs of the embedded simulated market (`SimConfig`), with their defaults.

Demo volatility: the volatilities are realistic annualised figures (BTC 60%, ETH 70%, SOL 90%)
multiplied by `vol_multiplier` (default 4), so a one-minute move is ~0.3% for BTC (about $200)
instead of ~0.08%: the price visibly moves while someone watches. A weak mean reversion of the
log price towards the start price (half-life one day) keeps a daemon left running for weeks
in a sensible range; set `reversion_half_life_s=None` for a pure random walk.

At the defaults each provider quotes 5 levels a side, $20k at its touch growing 1.5x a level,
the tightest best bid and ask 2 bps apart; noise takers send about 4 orders a second per symbol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

DEFAULT_SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")


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
