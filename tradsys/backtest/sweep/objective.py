"""The metric a sweep ranks by and an optimiser maximises or minimises (`--objective`, `--direction`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tradsys.backtest.sweep.errors import SweepError

METRICS = ("sharpe", "total_return", "calmar", "cagr", "sortino", "profit_factor", "win_rate", "avg_trade",
           "final_equity", "max_drawdown", "max_drawdown_duration_s", "volatility", "fees", "trades", "fills",
           "exposure")
"""The metrics of a backtest result a sweep can rank by."""
ALIASES = {"return": "total_return"}
LOWER_IS_BETTER = frozenset({"max_drawdown", "max_drawdown_duration_s", "volatility", "fees"})


@dataclass(frozen=True)
class Objective:
    metric: str
    maximise: bool

    @property
    def direction(self) -> str:
        return "max" if self.maximise else "min"

    def value(self, row: dict[str, Any]) -> float | None:
        """The row's metric; None for a run that failed, or a metric that has no value."""
        if row["state"] in ("failed", "error"):
            return None
        value = row["metrics"].get(self.metric)
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def ranked(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Best first; rows without a value last, in their order (the sort is stable)."""
        def key(row: dict[str, Any]) -> tuple[int, float]:
            value = self.value(row)
            if value is None:
                return (1, 0.0)
            return (0, -value if self.maximise else value)

        return sorted(rows, key=key)

    def best(self, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        ranked = self.ranked(rows)
        return ranked[0] if ranked and self.value(ranked[0]) is not None else None


def objective(name: str, direction: str | None = None) -> Objective:
    """`sharpe`, `return`, `calmar` or any of METRICS; the direction defaults to the metric's better one."""
    metric = ALIASES.get(name, name)
    if metric not in METRICS:
        raise SweepError(f"--objective {name!r}: not a metric (one of return, {', '.join(METRICS)})")
    if direction not in (None, "max", "min"):
        raise SweepError(f"--direction must be max or min, got {direction!r}")
    maximise = metric not in LOWER_IS_BETTER if direction is None else direction == "max"
    return Objective(metric, maximise)
