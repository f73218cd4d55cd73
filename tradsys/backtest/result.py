"""The outcome of a backtest: metrics, fills, round-trip trades and the equity curve as polars frames."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from tradsys.backtest import metrics as m
from tradsys.backtest.explain import explain
from tradsys.engine.instrument import CASH_SCALE

if TYPE_CHECKING:
    from tradsys.backtest.sim import Simulation
    from tradsys.data import MarketData

MAX_CURVE_POINTS = 20_000
"""Trade-data equity curves are sampled at a regular interval chosen to give about this many points."""
MAX_CHART_POINTS = 2_000
"""The report's price chart samples each symbol's prices down to about this many points."""
FILL_COLUMNS = {"ts": pl.Int64, "strategy": pl.String, "order_id": pl.String, "symbol": pl.String, "side": pl.String,
                "price_ticks": pl.Int64, "qty_lots": pl.Int64, "fee_units": pl.Int64, "liquidity": pl.String}
"""The tuples of `Simulation.fills`."""
TRADE_COLUMNS = {"strategy": pl.String, "symbol": pl.String, "entry_ts": pl.Int64, "exit_ts": pl.Int64,
                 "qty": pl.Float64, "pnl": pl.Float64, "side": pl.String, "fees": pl.Float64}
NICE_PERIODS_S = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86_400, 7 * 86_400)


@dataclass
class BacktestResult:
    metrics: dict[str, Any]
    fills: pl.DataFrame
    trades: pl.DataFrame
    equity: pl.DataFrame
    """ts (ns), time, equity, drawdown (fraction below the running peak, <= 0), exposed (bool)."""
    strategies: list[dict[str, Any]]
    logs: list[tuple[str, int, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    """Run facts: data kind and rows, mode (vectorised/event), elapsed seconds, rows per second; with
    replayed peers' signals, what became of them (`signals`)."""
    warnings: list[str] = field(default_factory=list)
    """Why the run sent no order or got no fill, refusals by reason, metrics from a short span."""
    prices: pl.DataFrame = field(default_factory=pl.DataFrame)
    """ts, symbol, price (the close, or the trade price), sampled to about MAX_CHART_POINTS per symbol."""

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": _clean(self.metrics), "strategies": self.strategies, "info": _clean(self.info),
                "warnings": self.warnings}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, out_dir: str | Path, fmt: str = "parquet") -> list[Path]:
        """fills, trades and equity as parquet (or csv), plus summary.json and report.html."""
        from tradsys.backtest.html_report import write_html

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, frame in (("fills", self.fills), ("trades", self.trades), ("equity", self.equity)):
            path = out / f"{name}.{fmt}"
            if fmt == "csv":
                frame.write_csv(path)
            else:
                frame.write_parquet(path)
            written.append(path)
        path = out / "summary.json"
        path.write_text(self.to_json())
        written.append(path)
        written.append(write_html(self, out / "report.html"))
        return written


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out


def build_result(sim: Simulation, data: MarketData, frame: pl.DataFrame, mode: str, elapsed: float) -> BacktestResult:
    """The one result of every run mode, from what the simulation recorded over `frame` (the data
    with ticks); `mode` and `elapsed` go into its info."""
    ticks, lots = sim.ticks, sim.lots
    raw = _frame(sim.fills, FILL_COLUMNS)
    tick = pl.col("symbol").replace_strict(ticks, return_dtype=pl.Float64, default=0.0)
    lot = pl.col("symbol").replace_strict(lots, return_dtype=pl.Float64, default=0.0)
    fills = raw.select(
        "ts", pl.from_epoch("ts", time_unit="ns").dt.replace_time_zone("UTC").alias("time"), "strategy", "order_id",
        "symbol", "side", (pl.col("price_ticks") * tick).alias("price"), (pl.col("qty_lots") * lot).alias("qty"),
        (pl.col("fee_units") / CASH_SCALE).alias("fee"), "liquidity",
    )
    capital = sim.config.initial_capital
    mark = "close" if sim.kind == "bars" else "price"
    timeline = frame.select("ts", "symbol", pl.col(mark).alias("mark"))
    equity = equity_curve(timeline, fills, capital, len(data.symbols))
    if sim.kind == "trades" and equity.height > MAX_CURVE_POINTS:
        equity = _resample(equity)
    equity = equity.with_columns(
        (pl.col("equity") / pl.col("equity").cum_max() - 1.0).alias("drawdown"),
    ).select("ts", pl.from_epoch("ts", time_unit="ns").dt.replace_time_zone("UTC").alias("time"), "equity", "drawdown",
             "exposed")
    trades = _trades(fills)
    ts_s = equity.get_column("ts")
    eq_s = equity.get_column("equity")
    if len(ts_s):  # the curve starts from the capital just before the first point
        first_gap = int(ts_s[1] - ts_s[0]) if len(ts_s) > 1 else 1
        ts_s = pl.concat([pl.Series("ts", [int(ts_s[0]) - first_gap], dtype=pl.Int64), ts_s])
        eq_s = pl.concat([pl.Series("equity", [float(capital)], dtype=pl.Float64), eq_s])
    exposure = float(equity.get_column("exposed").mean() or 0.0) if equity.height else 0.0
    metrics = m.summary(ts_s, eq_s, exposure, float(fills.get_column("fee").sum() or 0.0), fills.height,
                        trades.get_column("pnl").to_list(), capital)
    metrics["max_drawdown_duration_s"] = metrics.pop("max_drawdown_duration_ns") / 1e9
    counts = dict(fills.get_column("strategy").value_counts().iter_rows())
    strategies = []
    logs = []
    for runner in sim.runners:
        strategies.append({
            "name": runner.id, "kind": type(runner.strategy).kind(), "params": {k: _jsonable(v) for k, v in runner.strategy.p.items()},
            "state": runner.state, "error": runner.error, "account": runner.ctx.account,
            "fills": counts.get(runner.id, 0),
        })
        logs += [(runner.id, ts, text) for ts, text in runner.ctx.messages]
    rows = frame.height
    info = {
        "data": data.name, "kind": sim.kind, "rows": rows, "symbols": list(data.symbols),
        "start": int(ts_s[1]) if len(ts_s) > 1 else None, "end": int(ts_s[-1]) if len(ts_s) else None,
        "mode": mode, "elapsed_s": elapsed, "rows_per_s": rows / elapsed if elapsed > 0 else None,
        "orders_sent": sim.orders_sent, "rejections": dict(sim.rejections),
        "fill_rules": "bars: next-open / trade-through" if sim.kind == "bars" else f"trades: queue={sim.config.queue}, latency={sim.config.latency_ms}ms",
    }
    if sim.peer_signals:
        info["signals"] = sim.peer_signals.summary()
    warnings = explain(sim, rows, len(data.symbols), metrics)
    every = max(1, rows // (MAX_CHART_POINTS * max(1, len(data.symbols))))
    prices = timeline.filter(pl.int_range(pl.len()).over("symbol") % every == 0).rename({"mark": "price"})
    return BacktestResult(metrics, fills, trades, equity, strategies, logs, info, warnings, prices)


def _frame(rows: list[tuple], schema: dict[str, Any]) -> pl.DataFrame:
    """Built column by column: polars does that much faster than from the tuples."""
    columns = zip(*rows) if rows else [()] * len(schema)
    return pl.DataFrame([pl.Series(name, values, dtype=dtype)
                         for (name, dtype), values in zip(schema.items(), columns)])


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def equity_curve(timeline: pl.DataFrame, fills: pl.DataFrame, capital: float, symbols: int) -> pl.DataFrame:
    """Equity at every row of `timeline` (ts, symbol, mark; `symbols` different ones): capital + cash
    flows of the fills at or before that time + positions marked at each symbol's latest mark.
    Columns ts, equity, exposed."""
    flows = fills.select(
        "ts", "symbol",
        pl.when(pl.col("side") == "buy").then(pl.col("qty")).otherwise(-pl.col("qty")).alias("sq"),
        "price", "fee",
    ).with_columns((-pl.col("sq") * pl.col("price") - pl.col("fee")).alias("cf"))
    if symbols == 1:  # no per-symbol windows needed
        flows = flows.group_by("ts", maintain_order=True).agg(pl.col("sq").sum(), pl.col("cf").sum()).sort("ts")
        flows = flows.select("ts", pl.col("sq").cum_sum().alias("pos"), pl.col("cf").cum_sum().alias("cash"))
        joined = timeline.select("ts", "mark").join_asof(flows, on="ts", strategy="backward", check_sortedness=False)
        joined = joined.with_columns(pl.col("pos").fill_null(0.0), pl.col("cash").fill_null(0.0))
        curve = joined.select("ts", (capital + pl.col("cash") + pl.col("pos") * pl.col("mark")).alias("equity"),
                              (pl.col("pos").abs() > 1e-12).alias("exposed"))
        ts = curve.get_column("ts")
        if len(ts) > 1 and (ts.diff().drop_nulls() > 0).all():
            return curve
        return curve.group_by("ts", maintain_order=True).last()
    flows = flows.group_by("symbol", "ts", maintain_order=True).agg(pl.col("sq").sum(), pl.col("cf").sum()).sort("ts")
    flows = flows.with_columns(pl.col("sq").cum_sum().over("symbol").alias("pos"),
                               pl.col("cf").cum_sum().over("symbol").alias("cash"))
    line = timeline.with_row_index("_i").sort("ts", maintain_order=True)
    joined = line.join_asof(flows.select("ts", "symbol", "pos", "cash"), on="ts", by="symbol", strategy="backward",
                            check_sortedness=False)
    joined = joined.with_columns(pl.col("pos").fill_null(0.0), pl.col("cash").fill_null(0.0))
    joined = joined.with_columns(
        (pl.col("cash") + pl.col("pos") * pl.col("mark")).alias("value"),
        (pl.col("pos").abs() > 1e-12).cast(pl.Int64).alias("ex"),
    ).with_columns(
        (pl.col("value") - pl.col("value").shift(1, fill_value=0.0).over("symbol")).alias("dv"),
        (pl.col("ex") - pl.col("ex").shift(1, fill_value=0).over("symbol")).alias("dex"),
    )
    curve = joined.select("ts", (capital + pl.col("dv").cum_sum()).alias("equity"), (pl.col("dex").cum_sum() > 0).alias("exposed"))
    return curve.group_by("ts", maintain_order=True).last()


def _resample(equity: pl.DataFrame) -> pl.DataFrame:
    span_s = (equity.get_column("ts").max() - equity.get_column("ts").min()) / 1e9
    period = next((p for p in NICE_PERIODS_S if span_s / p <= MAX_CURVE_POINTS), NICE_PERIODS_S[-1])
    every = period * 10**9
    return equity.with_columns((pl.col("ts") // every * every + every).alias("bucket")).group_by(
        "bucket", maintain_order=True).agg(pl.col("equity").last(), pl.col("exposed").mean() > 0.5).rename(
        {"bucket": "ts"})


def _trades(fills: pl.DataFrame) -> pl.DataFrame:
    rows = []
    signed = fills.sort("ts", maintain_order=True).select(
        "strategy", "symbol", "ts", pl.when(pl.col("side") == "buy").then(pl.col("qty")).otherwise(-pl.col("qty")),
        "price", "fee",
    )
    for (strategy, symbol), part in signed.group_by(["strategy", "symbol"], maintain_order=True):
        seq = list(zip(*(part.get_column(c).to_list() for c in ("ts", "qty", "price", "fee"))))
        for entry, exit_, qty, pnl, direction, fees in m.round_trips(seq):
            rows.append((strategy, symbol, entry, exit_, qty, pnl, "long" if direction > 0 else "short", fees))
    return _frame(rows, TRADE_COLUMNS).with_columns(
        ((pl.col("exit_ts") - pl.col("entry_ts")) / 1e9).alias("duration_s"),
        pl.from_epoch("entry_ts", time_unit="ns").dt.replace_time_zone("UTC").alias("entry_time"),
        pl.from_epoch("exit_ts", time_unit="ns").dt.replace_time_zone("UTC").alias("exit_time"),
    )
