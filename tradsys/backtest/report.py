"""Presenting a result: a rich summary table and a self-contained HTML report (inline SVG, no network)."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.table import Table

from tradsys.backtest.result import BacktestResult

ROWS: list[tuple[str, str, str]] = [
    ("total_return", "Total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("volatility", "Volatility (ann.)", "pct"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_duration_s", "Max drawdown duration", "dur"),
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
    for key, label, kind in ROWS:
        table.add_row(label, fmt(result.metrics.get(key), kind))
    rate = info.get("rows_per_s")
    table.caption = (f"{info.get('rows', 0):,} {info.get('kind')} in {info.get('elapsed_s', 0):.2f}s "
                     f"({rate:,.0f}/s, {info.get('mode')})" if rate else None)
    return table


def _svg_line(xs: list[float], ys: list[float], width: int, height: int, color: str, fill: bool = False) -> str:
    if not xs:
        return ""
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 == y0:
        y1 = y0 + 1
    if x1 == x0:
        x1 = x0 + 1
    step = max(1, len(xs) // 2000)
    pts = [(40 + (x - x0) / (x1 - x0) * (width - 50), 10 + (y1 - y) / (y1 - y0) * (height - 30))
           for x, y in zip(xs[::step], ys[::step])]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    labels = (f'<text x="2" y="16" font-size="10">{y1:,.4g}</text>'
              f'<text x="2" y="{height - 14}" font-size="10">{y0:,.4g}</text>')
    if fill:
        top = 10 + (y1 - 0) / (y1 - y0) * (height - 30) if y0 <= 0 <= y1 else 10
        poly = f"{pts[0][0]:.1f},{top:.1f} {path} {pts[-1][0]:.1f},{top:.1f}"
        shape = f'<polygon points="{poly}" fill="{color}" fill-opacity="0.35" stroke="{color}"/>'
    else:
        shape = f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.2"/>'
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'style="background:#fafafa;border:1px solid #ddd">{labels}{shape}</svg>')


def write_html(result: BacktestResult, path: str | Path) -> Path:
    """Equity and drawdown charts and the metrics, in one file with no external resources."""
    path = Path(path)
    eq = result.equity
    xs = [float(t) for t in eq.get_column("ts").to_list()]
    equity_svg = _svg_line(xs, eq.get_column("equity").to_list(), 900, 300, "#1f77b4")
    dd_svg = _svg_line(xs, [d * 100 for d in eq.get_column("drawdown").to_list()], 900, 160, "#d62728", fill=True)
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{html.escape(fmt(result.metrics.get(key), kind))}</td></tr>"
                   for key, label, kind in ROWS)
    info = result.info

    def when(ns: Any) -> str:
        return "-" if ns is None else datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")

    strategies = "".join(
        f"<li>{html.escape(s['name'])} ({html.escape(s['kind'])}) {html.escape(str(s['params']))}: {html.escape(s['state'])}"
        f"{(' - ' + html.escape(s['error'])) if s['error'] else ''}</li>" for s in result.strategies)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>TradSys backtest</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td{{padding:2px 12px;border-bottom:1px solid #eee}}td:last-child{{text-align:right}}</style>
</head><body><h1>Backtest report</h1>
<p>{html.escape(str(info.get('data')))}: {info.get('rows', 0):,} {html.escape(str(info.get('kind')))} from {when(info.get('start'))} to {when(info.get('end'))} UTC; mode {html.escape(str(info.get('mode')))}; fill rules {html.escape(str(info.get('fill_rules')))}.</p>
<ul>{strategies}</ul>
<h2>Equity</h2>{equity_svg}<h2>Drawdown (%)</h2>{dd_svg}
<h2>Metrics</h2><table>{rows}</table></body></html>"""
    path.write_text(page)
    return path
