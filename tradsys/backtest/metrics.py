"""Performance metrics from an equity curve and a list of closed trades.

Conventions: returns are simple period returns of equity; Sharpe and Sortino use a zero risk-free
rate and are annualised by sqrt(periods per year), the period being the equity curve's sampling
interval; Sortino's downside deviation is sqrt(mean(min(r, 0)^2)) over all periods. CAGR uses
calendar time between the first and last points (365-day years), and only over MIN_ANNUAL_DAYS
or more (`span_days` says how long the curve is). Max drawdown is the largest
fall from a running peak as a fraction of that peak; its duration is the longest time spent
below a previous peak (until the peak is regained, or the end). Calmar is CAGR over max drawdown
(none without a CAGR or a drawdown). A trade is a round trip: from
flat to flat (a reversal closes one trade and opens another); its PnL includes fees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

YEAR_NS = 365 * 86_400 * 10**9
DAY_NS = 86_400 * 10**9
MIN_ANNUAL_DAYS = 30.0
"""CAGR needs at least this span: a few days compounded to a year give meaningless figures."""


def returns_stats(equity: Sequence[float] | pl.Series, periods_per_year: float) -> dict[str, float | None]:
    eq = pl.Series("e", equity, dtype=pl.Float64)
    prev = eq.shift(1)
    rets = (eq / prev - 1.0).filter(prev.is_not_null() & (prev != 0))
    if len(rets) < 2:
        return {"sharpe": None, "sortino": None, "volatility": None}
    mean = float(rets.mean())  # type: ignore[arg-type]
    std = float(rets.std(ddof=1) or 0.0)  # type: ignore[arg-type]
    down = math.sqrt(float((rets.clip(upper_bound=0.0) ** 2).mean()))  # type: ignore[arg-type]
    scale = math.sqrt(periods_per_year)
    return {
        "sharpe": None if std == 0 else mean / std * scale,
        "sortino": None if down == 0 else mean / down * scale,
        "volatility": std * scale,
    }


def drawdown(ts: Sequence[int] | pl.Series, equity: Sequence[float] | pl.Series) -> dict[str, float | int]:
    """Max drawdown (fraction, >= 0) and the longest time under water (ns)."""
    frame = pl.DataFrame({"ts": pl.Series(ts, dtype=pl.Int64), "e": pl.Series(equity, dtype=pl.Float64)})
    if frame.height == 0:
        return {"max_drawdown": 0.0, "max_drawdown_duration_ns": 0}
    frame = frame.with_columns(pl.col("e").cum_max().alias("peak"))  # once: expressions are not shared
    peak = pl.col("peak")
    worst = float(frame.select(((peak - pl.col("e")) / peak).fill_nan(0.0).max()).item() or 0.0)
    # a spell under water starts at each new peak (and at the first point) and lasts until the next
    # spell starts, or the end; a spell of one point was never under water
    starts = frame.with_row_index("i").filter((pl.col("e") >= peak) | (pl.col("i") == 0))
    index, start = starts.get_column("i").cast(pl.Int64), starts.get_column("ts")
    ends = start.shift(-1).fill_null(frame.get_column("ts")[-1])
    points = index.shift(-1).fill_null(frame.height) - index
    longest = int(((ends - start) * (points > 1).cast(pl.Int64)).max() or 0)  # type: ignore[arg-type]
    return {"max_drawdown": max(0.0, worst), "max_drawdown_duration_ns": longest}


def trade_stats(pnls: Sequence[float]) -> dict[str, float | int | None]:
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    gross_loss = -sum(losses)
    return {
        "trades": len(pnls),
        "win_rate": None if not pnls else len(wins) / len(pnls),
        "profit_factor": None if gross_loss == 0 else sum(wins) / gross_loss,
        "avg_trade": None if not pnls else sum(pnls) / len(pnls),
    }


def summary(ts: Sequence[int] | pl.Series, equity: Sequence[float] | pl.Series, exposure: float, fees: float, fills: int,
            trade_pnls: Sequence[float], initial: float) -> dict[str, float | int | None]:
    """Every metric of a run; `ts` and `equity` are the sampled curve (first point = the start)."""
    final = float(equity[-1]) if len(equity) else initial
    span = int(ts[-1] - ts[0]) if len(ts) > 1 else 0
    years = span / YEAR_NS
    total = final / initial - 1.0 if initial else 0.0
    cagr = None
    if years * 365 >= MIN_ANNUAL_DAYS and final > 0 and initial > 0:
        try:
            cagr = (final / initial) ** (1.0 / years) - 1.0
        except OverflowError:
            cagr = None
    period = span / (len(ts) - 1) if len(ts) > 1 else 0
    out: dict[str, float | int | None] = {
        "initial_capital": initial,
        "final_equity": final,
        "total_return": total,
        "cagr": cagr,
        "span_days": span / DAY_NS,
    }
    out.update(returns_stats(equity, YEAR_NS / period if period else 0.0))
    out.update(drawdown(ts, equity))
    out["calmar"] = cagr / out["max_drawdown"] if cagr is not None and out["max_drawdown"] else None
    out.update(trade_stats(trade_pnls))
    out.update({"fills": fills, "exposure": exposure, "fees": fees})
    return out


def round_trips(fills: Sequence[tuple[int, float, float, float]]) -> list[tuple[int, int, float, float, int, float]]:
    """Closed trades from one account's fills in one symbol: (ts, signed qty, price, fee) each;
    returns (entry ts, exit ts, largest |position|, pnl, direction 1 long / -1 short, fees). A
    reversal's fee is split between the trade it closes and the one it opens by quantity. An open
    trade at the end is left out."""
    out: list[tuple[int, int, float, float, int, float]] = []
    pos = cash = peak = fees = 0.0
    entry = 0
    eps = 1e-12
    for ts, sq, price, fee in fills:
        if abs(pos) < eps:
            pos, cash, peak, fees, entry = 0.0, 0.0, 0.0, 0.0, ts
        new = pos + sq
        if abs(pos) > eps and abs(new) > eps and (new > 0) != (pos > 0):
            frac = abs(pos) / abs(sq)
            cash += pos * price - fee * frac
            out.append((entry, ts, max(peak, abs(pos)), cash, 1 if pos > 0 else -1, fees + fee * frac))
            pos, cash, peak, entry = new, -new * price - fee * (1 - frac), abs(new), ts
            fees = fee * (1 - frac)
            continue
        cash += -sq * price - fee
        fees += fee
        direction = 1 if pos > 0 else -1
        pos = new
        peak = max(peak, abs(pos))
        if abs(pos) < eps:
            out.append((entry, ts, peak, cash, direction, fees))
            pos = 0.0
    return out
