"""The HTML report of a result: one self-contained file (inline SVG, no script, no network).

It shows the run's parameters and data range, its warnings, the price of each symbol with the
strategy's buys and sells marked, the equity and the drawdown on a shared UTC time axis, the
metrics and the round-trip trades (entry, exit, side, quantity, PnL, fees, duration). Numbers
are written out with thousands separators, never in exponent form.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from tradsys.backtest.report import fmt, rows
from tradsys.backtest.result import BacktestResult

WIDTH = 960
LEFT, RIGHT, TOP, BOTTOM = 90, 20, 12, 28
"""Chart margins: y labels on the left, time labels below."""
MAX_MARKERS = 1_000
MAX_TRADE_ROWS = 500
STYLE = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
         "td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:right}td:first-child,th:first-child"
         "{text-align:left}.warning{color:#a15c00}svg{background:#fafafa;border:1px solid #ddd;display:block}"
         "svg text{font-size:11px;fill:#555}")


def number(value: float) -> str:
    """Readable at a glance: 108,800 / 101.25 / 0.0051234; never 1.088e+05."""
    if value is None or not math.isfinite(value):
        return "-"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 1 or size == 0:
        return f"{value:,.2f}"
    return f"{value:,.{min(10, 3 - math.floor(math.log10(size)))}f}"


def when(ns: int | None, with_time: bool = True) -> str:
    if ns is None:
        return "-"
    moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:,.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:,.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds:,.0f} s"


class Chart:
    """A line over time on fixed x bounds, so that every chart of a report shares its time axis."""

    def __init__(self, t0: int, t1: int, height: int) -> None:
        self.t0, self.t1 = t0, max(t1, t0 + 1)
        self.height = height

    def svg(self, ts: list[int], ys: list[float], color: str, label: Callable[[float], str], name: str,
            fill: bool = False, markers: list[tuple[int, float, bool]] | None = None) -> str:
        """`markers`: (ts, y, is_buy) drawn as up (buy) and down (sell) triangles."""
        markers = markers or []
        lo = min(ys + [y for _, y, _ in markers], default=0.0)
        hi = max(ys + [y for _, y, _ in markers], default=1.0)
        if fill:
            hi = max(hi, 0.0)
        if hi == lo:
            hi, lo = hi + 1, lo - 1
        x = self._x
        h = self.height

        def y(v: float) -> float:
            return TOP + (hi - v) / (hi - lo) * (h - TOP - BOTTOM)

        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-name="{name}" width="{WIDTH}" '
                 f'height="{h}" role="img" aria-label="{name}">']
        for i in range(5):
            v = lo + (hi - lo) * i / 4
            parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                         f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{html.escape(label(v))}</text>')
        with_time = self.t1 - self.t0 < 5 * 86_400 * 10**9
        for i in range(5):
            t = self.t0 + (self.t1 - self.t0) * i // 4
            anchor = "start" if i == 0 else "end" if i == 4 else "middle"
            parts.append(f'<text x="{x(t):.1f}" y="{h - 8}" text-anchor="{anchor}">{when(t, with_time)}</text>')
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(ts, ys))
        if fill and points:
            base = y(0.0)
            parts.append(f'<polygon points="{x(ts[0]):.1f},{base:.1f} {points} {x(ts[-1]):.1f},{base:.1f}" '
                         f'fill="{color}" fill-opacity="0.3" stroke="{color}"/>')
        elif points:
            parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.2"/>')
        for t, v, buy in markers:
            px, py = x(t), y(v)
            tri = (f"{px - 5:.1f},{py + 9:.1f} {px + 5:.1f},{py + 9:.1f} {px:.1f},{py + 1:.1f}" if buy
                   else f"{px - 5:.1f},{py - 9:.1f} {px + 5:.1f},{py - 9:.1f} {px:.1f},{py - 1:.1f}")
            parts.append(f'<polygon class="{"buy" if buy else "sell"}" points="{tri}" '
                         f'fill="{"#2ca02c" if buy else "#d62728"}"/>')
        parts.append("</svg>")
        return "".join(parts)

    def _x(self, t: int) -> float:
        return LEFT + (t - self.t0) / (self.t1 - self.t0) * (WIDTH - LEFT - RIGHT)


def write_html(result: BacktestResult, path: str | Path) -> Path:
    """The report (see the module doc), written to `path`; returns the path."""
    path = Path(path)
    info, eq = result.info, result.equity
    ts = eq.get_column("ts").to_list()
    t0 = ts[0] if ts else int(info.get("start") or 0)
    t1 = ts[-1] if ts else int(info.get("end") or t0 + 1)
    step = max(1, len(ts) // 2000)
    chart = Chart(t0, t1, 300)
    sections = [_prices(result, chart), "<h2>Equity</h2>",
                chart.svg(ts[::step], eq.get_column("equity").to_list()[::step], "#1f77b4", number, "equity"),
                "<h2>Drawdown</h2>",
                Chart(t0, t1, 170).svg(ts[::step], [d * 100 for d in eq.get_column("drawdown").to_list()[::step]],
                                       "#d62728", lambda v: f"{number(v)}%", "drawdown", fill=True)]
    metrics = "".join(f"<tr><td>{html.escape(label)}</td><td>{html.escape(fmt(result.metrics.get(key), kind))}</td></tr>"
                      for key, label, kind in rows(result))
    strategies = "".join(
        f"<tr><td>{html.escape(s['name'])}</td><td>{html.escape(s['kind'])}</td><td>"
        + html.escape(", ".join(f"{k}={v}" for k, v in s["params"].items()))
        + f"</td><td>{html.escape(s['state'])}{(': ' + html.escape(s['error'])) if s['error'] else ''}</td></tr>"
        for s in result.strategies)
    warnings = "".join(f'<p class="warning">warning: {html.escape(w)}</p>' for w in result.warnings)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>TradSys backtest</title>
<style>{STYLE}</style></head><body><h1>Backtest report</h1>
<p>{html.escape(str(info.get('data')))}: {info.get('rows', 0):,} {html.escape(str(info.get('kind')))} of \
{html.escape(', '.join(info.get('symbols', [])))} from {when(info.get('start'))} to {when(info.get('end'))} UTC; \
mode {html.escape(str(info.get('mode')))}; fill rules {html.escape(str(info.get('fill_rules')))}.</p>
<table class="strategies"><tr><th>strategy</th><th>kind</th><th>parameters</th><th>state</th></tr>{strategies}</table>
{warnings}{''.join(sections)}
<h2>Metrics</h2><table class="metrics">{metrics}</table>
{_trades(result.trades)}</body></html>"""
    path.write_text(page)
    return path


def _prices(result: BacktestResult, chart: Chart) -> str:
    prices, fills = result.prices, result.fills
    if prices.height == 0:
        return ""
    out = []
    for (symbol,), part in prices.group_by("symbol", maintain_order=True):
        mine = fills.filter(pl.col("symbol") == symbol)
        step = max(1, mine.height // MAX_MARKERS)
        marks = [(t, p, side == "buy") for t, p, side in
                 mine.select("ts", "price", "side").gather_every(step).iter_rows()]
        out.append(f"<h2>{html.escape(str(symbol))}: price, buys ▲ and sells ▼</h2>")
        out.append(chart.svg(part.get_column("ts").to_list(), part.get_column("price").to_list(), "#444", number,
                             f"price {symbol}", markers=marks))
    return "".join(out)


def _trades(trades: pl.DataFrame) -> str:
    if trades.height == 0:
        return "<h2>Trades</h2><p>No round trip was closed.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("entry (UTC)", "exit (UTC)", "symbol", "side", "qty", "PnL", "fees",
                                             "duration"))
    lines: list[str] = []
    for row in trades.head(MAX_TRADE_ROWS).iter_rows(named=True):
        cells: list[Any] = [when(row["entry_ts"]), when(row["exit_ts"]), html.escape(row["symbol"]), row["side"],
                            number(row["qty"]), number(row["pnl"]), number(row["fees"]), duration(row["duration_s"])]
        lines.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    more = (f"<p>The first {MAX_TRADE_ROWS:,} of {trades.height:,} trades; all are in trades.parquet (--out).</p>"
            if trades.height > MAX_TRADE_ROWS else "")
    return f'<h2>Trades</h2><table class="trades"><tr>{head}</tr>{"".join(lines)}</table>{more}'
