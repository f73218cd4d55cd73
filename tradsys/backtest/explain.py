"""Why a run came out as it did, in sentences for the table, stderr and `--json`'s `warnings`.

A run with no order or no fill is nearly always one of a few things a user can fix: the strategy
needs more bars than the data have, it works on bars and was given trades, or the venue refused
its orders (capital in another currency, sizes below the lot, a risk limit). Annualised metrics
from a short span are marked too: a few lucky days compound to absurd yearly figures. Replayed
peers' signals that reached no strategy are counted, with why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradsys.backtest.metrics import MIN_ANNUAL_DAYS
from tradsys.engine.strategy import Strategy

if TYPE_CHECKING:
    from tradsys.backtest.sim import Simulation

BAR_HOOKS = ("on_bar", "on_bars")
TRADE_HOOKS = ("on_trade", "on_book", "on_timer")
HINTS = {
    "insufficient_balance": "the capital ({capital}) does not cover them: raise --capital (in the quote currency) "
                            "or lower the strategy's quantity",
    "invalid_qty": "their size rounds to zero lots: raise the quantity or set a finer --lot-size",
    "min_qty": "their size is below the instrument's minimum: raise the quantity or set a finer --lot-size",
    "max_qty": "their size is above the instrument's maximum: lower the quantity",
    "price_band": "their price is too far from the market",
}
RISK_HINT = "a risk limit refused them: see --limit"


def explain(sim: Simulation, rows: int, symbols: int, metrics: dict[str, Any]) -> list[str]:
    """The warnings of a finished run over `rows` rows of `symbols` symbols (see the module doc)."""
    out: list[str] = []
    fills = int(metrics.get("fills") or 0)
    if sim.orders_sent == 0:
        per_symbol = rows // max(1, symbols)
        out += [why for runner in sim.runners if runner.state != "failed"
                for why in _no_orders(type(runner.strategy), runner.id, runner.strategy.p, sim.kind, per_symbol)]
    elif fills == 0:
        out.append(f"{sim.orders_sent:,} orders were sent and none filled")
    if sim.rejections:
        capital = f"{sim.config.initial_capital:,.2f} {sim.config.currency}"
        for reason, count in sorted(sim.rejections.items(), key=lambda kv: -kv[1]):
            hint = HINTS.get(reason, RISK_HINT if reason.startswith(("max_", "daily_", "rate_")) else "")
            text = f"{count:,} order{'s' if count != 1 else ''} refused: {reason}"
            out.append(text + (": " + hint.format(capital=capital) if hint else ""))
    if sim.peer_signals:
        counts = sim.peer_signals.summary()
        if counts["outside_data"]:
            out.append(f"{counts['outside_data']:,} of {counts['recorded']:,} recorded signals fall outside the "
                       "data's time and were not replayed: record while the data are, or widen --timerange")
        if counts["no_strategy"]:
            out.append(f"{counts['no_strategy']:,} recorded signals are for symbols no strategy trades")
    days = metrics.get("span_days")
    if days is not None and 0 < days < MIN_ANNUAL_DAYS:
        out.append(f"the data span {days:,.1f} days: CAGR is withheld, and Sharpe, Sortino and volatility are "
                   f"annualised from those {days:,.1f} days")
    return out


def _no_orders(cls: type[Strategy], name: str, params: Any, kind: str, per_symbol: int) -> list[str]:
    bar_strategy = any(_overrides(cls, hook) for hook in BAR_HOOKS) or cls.vectorised()
    if kind == "trades" and bar_strategy and not any(_overrides(cls, hook) for hook in TRADE_HOOKS):
        return [f"{name} works on bars and the data are trades, so it never ran: add --timeframe 1m (or another) "
                "to make bars of the trades"]
    if kind == "bars":
        long = [(k, v) for k, v in params.items() if type(v) is int and v >= per_symbol > 0]
        if long:
            asked = ", ".join(f"{k}={v:,}" for k, v in long)
            return [f"{name} sent no order: it needs {asked} bars and the data have {per_symbol:,} per symbol; "
                    "use more data, a shorter --timeframe or smaller parameters"]
    return [f"{name} sent no order: its conditions never held on these {per_symbol:,} {kind} per symbol"]


def _overrides(cls: type[Strategy], hook: str) -> bool:
    return getattr(cls, hook, None) is not getattr(Strategy, hook, None)
