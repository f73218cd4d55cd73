"""The settings of a backtest run: capital, fees, slippage, latency, queue model and risk limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BACKTEST_LIMITS: dict[str, Any] = {"price_band_pct": None, "breaker_move_pct": None}
"""Venue-wide: historical prices are taken as given (see `tradsys.backtest.rules`)."""


@dataclass
class BacktestConfig:
    initial_capital: float = 100_000.0
    currency: str | None = None
    """The capital's currency; default the quote currency of the data's symbols."""
    maker_fee_bps: float = 1.0
    taker_fee_bps: float = 5.0
    slippage_bps: float = 0.0
    latency_ms: float = 0.0
    queue: str = "through"
    """Trades only: "through" (fills need a trade through the price) or "touch"."""
    limits: dict[str, Any] = field(default_factory=dict)
    """Risk limits for the strategies' accounts, on top of DEFAULT_BACKTEST_LIMITS (venue-wide)."""
    vectorised: bool = True
    """Use a strategy's `signals` on bars when it has one (not when peers' signals are replayed)."""
    tick_size: str | None = None
    lot_size: str | None = None
    """For every symbol of the data; default the venue's, or read from the data (`tradsys.backtest.instruments`)."""
    signals: str | Path | list[dict[str, Any]] | None = None
    """Peers' signals to replay to `on_signal` (`tradsys.backtest.signals`): a recording, as
    `tradsys signals listen --json` writes it, or the signals themselves."""
