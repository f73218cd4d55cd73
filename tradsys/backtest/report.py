"""The summary table of a result: its metrics, the run's facts and its warnings."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from tradsys.backtest.metrics import MIN_ANNUAL_DAYS
from tradsys.backtest.result import BacktestResult

ROWS: list[tuple[str, str, str]] = [
    ("total_return", "Total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("volatility", "Volatility (ann.)", "pct"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_duration_s", "Max drawdown duration", "dur"),
    ("calmar", "Calmar (CAGR / max drawdown)", "num"),
    ("trades", "Trades (round trips)", "int"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "num"),
    ("avg_trade", "Average trade", "money"),
    ("fills", "Fills", "int"),
    ("exposure", "Exposure", "pct"),
    ("fees", "Fees", "money"),
    ("initial_capital", "Initial capital", "money"),
    ("final_equity", "Final equity", "money"),
]
ANNUALISED = ("sharpe", "sortino", "volatility")


def fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{value * 100:,.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "dur":
        seconds = float(value)
        if seconds >= 86_400:
            return f"{seconds / 86_400:,.1f} d"
        if seconds >= 3600:
            return f"{seconds / 3600:,.1f} h"
        return f"{seconds:,.0f} s"
    return f"{value:,.3f}"


def summary_table(result: BacktestResult, title: str | None = None) -> Table:
    info = result.info
    names = ", ".join(f"{s['name']}" + (f" [red]({s['state']})[/]" if s["state"] == "failed" else "") for s in result.strategies)
    table = Table(title=title or f"Backtest: {names} on {info.get('data')}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, label, kind in rows(result):
        table.add_row(label, fmt(result.metrics.get(key), kind))
    rate = info.get("rows_per_s")
    lines = [f"{info.get('rows', 0):,} {info.get('kind')} in {info.get('elapsed_s', 0):.2f}s "
             f"({rate:,.0f}/s, {info.get('mode')})"] if rate else []
    signals = info.get("signals")
    if signals:
        lines.append(f"{signals['delivered']:,} of {signals['recorded']:,} recorded signals replayed to the strategy")
    lines += [f"[yellow]warning:[/] {escape(w)}" for w in result.warnings]
    table.caption = "\n".join(lines) or None
    table.caption_justify = "left"
    return table


def rows(result: BacktestResult) -> list[tuple[str, str, str]]:
    """ROWS, the annualised ones labelled with the span when it is too short for them to mean much."""
    days = result.metrics.get("span_days")
    if days is None or not 0 < days < MIN_ANNUAL_DAYS:
        return ROWS
    return [(key, label.replace(" (ann.)", "") + f" (ann. from {days:,.1f} d)" if key in ANNUALISED else label, kind)
            for key, label, kind in ROWS]
