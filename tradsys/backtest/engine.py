"""BacktestEngine: strategies on historical bars or trades, through a real `Venue`.

    engine = BacktestEngine(initial_capital=100_000, taker_fee_bps=5)
    engine.add_strategy("sma_cross", {"fast": 10, "slow": 30})
    engine.load_data("bars.parquet")
    result = engine.run()
    result.metrics["sharpe"], result.fills  # polars DataFrame

A run picks one of three modes: `vectorised` (bars, one strategy with `signals`), `event_bars`
(bars, a callback per bar) or `trades`; each drives a `Simulation` and `result.build_result`
turns what it recorded into the result. The fill rules are in `tradsys.backtest.rules`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from tradsys.backtest.config import BacktestConfig
from tradsys.backtest.context import BacktestContext
from tradsys.backtest.event_bars import run_bars
from tradsys.backtest.instruments import backtest_instruments, quote_currency
from tradsys.backtest.result import BacktestResult, build_result
from tradsys.backtest.signals import SignalReplay, load_signals
from tradsys.backtest.sim import ProgressFn, Simulation
from tradsys.backtest.trades import run_trades
from tradsys.backtest.vectorised import run_vectorised
from tradsys.data import MarketData, load_market_data
from tradsys.engine import Instrument, Venue
from tradsys.engine.strategy import Params, Strategy, StrategyRunner, load_strategy, resolve_params

RunMode = Callable[[Simulation, pl.DataFrame, tuple[str, ...], ProgressFn | None], None]


@dataclass
class _Entry:
    cls: type[Strategy]
    params: Params
    symbols: tuple[str, ...] | None
    name: str


class BacktestEngine:
    """Register strategies, load data, run. See the module doc and `tradsys.backtest.rules`."""

    def __init__(self, initial_capital: float = 100_000.0, **options: Any) -> None:
        self.config = BacktestConfig(initial_capital=initial_capital, **options)
        if self.config.queue not in ("through", "touch"):
            raise ValueError(f"queue must be 'through' or 'touch', got {self.config.queue!r}")
        self.entries: list[_Entry] = []
        self.data: MarketData | None = None
        self.frame: pl.DataFrame | None = None
        """The data, read once by `load_data`: every run (a parameter sweep makes many) starts from it."""
        self.venue: Venue | None = None
        """The venue of the last run, for inspection (accounts, open orders)."""

    def add_strategy(self, strategy: str | type[Strategy], params: Mapping[str, Any] | None = None,
                     symbols: list[str] | tuple[str, ...] | None = None, name: str | None = None) -> BacktestEngine:
        """A strategy class or its name (`sma_cross`, `file.py:Class`); params are validated here."""
        cls = load_strategy(strategy) if isinstance(strategy, str) else strategy
        resolved = Params(resolve_params(cls.params, params))
        self.entries.append(_Entry(cls, resolved, tuple(symbols) if symbols else None,
                                   name or f"{cls.kind()}-{len(self.entries) + 1}"))
        return self

    def load_data(self, source: str | Path | pl.DataFrame | pl.LazyFrame | MarketData,
                  symbol: str | None = None, timerange: str | None = None,
                  timeframe: str | None = None) -> MarketData:
        """`timerange` and `timeframe` as in `tradsys.data_window` (the CLI's --timerange, --timeframe)."""
        if isinstance(source, MarketData):
            self.data = source
        else:
            self.data = load_market_data(source, symbol, timerange, timeframe)
        self.frame = self.data.collect()
        return self.data

    def run(self, initial_capital: float | None = None, progress: ProgressFn | None = None) -> BacktestResult:
        if self.data is None or self.frame is None:
            raise ValueError("no data: call load_data first")
        if not self.entries:
            raise ValueError("no strategy: call add_strategy first")
        if initial_capital is not None:
            self.config.initial_capital = initial_capital
        data = self.data
        instruments = backtest_instruments(data, self.frame, self.config.tick_size, self.config.lot_size)
        config = replace(self.config, currency=self.config.currency or quote_currency(instruments, data.symbols))
        sim = Simulation(config, instruments, data.kind)
        if config.signals is not None:
            sim.peer_signals = SignalReplay(load_signals(config.signals))
        started = time.perf_counter()
        frame = with_ticks(self.frame, data.kind, data.symbols, sim.venue.instruments)
        for i, entry in enumerate(self.entries):
            account = f"bt-{i + 1}"
            ctx = BacktestContext(sim, entry.symbols or data.symbols, f"s{i + 1}-", account)
            for key, value in self.config.limits.items():
                sim.venue.set_limit(key, value, account=account)
            sim.add_runner(StrategyRunner(entry.name, entry.cls, entry.params, ctx))
        mode, run_mode = self._mode(sim)
        run_mode(sim, frame, data.symbols, progress)
        sim.finish()
        elapsed = time.perf_counter() - started
        self.venue = sim.venue
        return build_result(sim, data, frame, mode, elapsed)

    def _mode(self, sim: Simulation) -> tuple[str, RunMode]:
        """The run mode and its name in the result's info: vectorised when the data are bars and the
        one strategy has `signals` (unless the config says not, or peers' signals are replayed), else
        event-driven."""
        if sim.kind != "bars":
            return "event", run_trades
        one = sim.runners[0] if len(sim.runners) == 1 else None
        if self.config.vectorised and not sim.peer_signals and one is not None and one.strategy.vectorised():
            return "vectorised", run_vectorised
        return "event", run_bars


def with_ticks(frame: pl.DataFrame, kind: str, symbols: tuple[str, ...],
               instruments: dict[str, Instrument]) -> pl.DataFrame:
    """Prices as integer ticks and quantities as lots of each row's instrument, beside the floats;
    `symbols` are the frame's (known from loading, so no pass over the column here). Bars also get
    `end_ns`, when each closes."""
    if len(symbols) == 1:  # the common case: plain literals, no per-row lookups
        tick: pl.Expr = pl.lit(float(instruments[symbols[0]].tick_size))
        lot: pl.Expr = pl.lit(float(instruments[symbols[0]].lot_size))
    else:
        tick = pl.col("symbol").replace_strict({s: float(i.tick_size) for s, i in instruments.items()},
                                               return_dtype=pl.Float64)
        lot = pl.col("symbol").replace_strict({s: float(i.lot_size) for s, i in instruments.items()},
                                              return_dtype=pl.Float64)
    cols = ("open", "high", "low", "close") if kind == "bars" else ("price",)
    exprs = [(pl.col(c) / tick).round(0).cast(pl.Int64).alias(f"{c}_ticks") for c in cols]
    if kind == "trades":
        exprs.append((pl.col("qty") / lot).round(0).cast(pl.Int64).alias("qty_lots"))
    else:  # a bar closes when the next one starts: the median gap between bars of its symbol
        gap = pl.col("ts").diff()
        interval = gap.filter(gap > 0).median()
        if len(symbols) > 1:
            interval = interval.over("symbol")
        exprs.append((pl.col("ts") + interval.fill_null(60_000_000_000).cast(pl.Int64)).alias("end_ns"))
    return frame.with_columns(exprs)  # one pass: each extra frame would copy every row again
