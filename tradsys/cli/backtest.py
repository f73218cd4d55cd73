"""`tradsys backtest run|sweep|strategies`: strategies over market data files (`sweep` is in `tradsys.cli.sweep`)."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradsys.cli.complete import builtin_strategies
from tradsys.data import DataError
from tradsys.engine.strategy import BUILTINS, ParamError, StrategyNotFound, load_strategy, parse_assignments

backtest_app = typer.Typer(help="Backtest strategies on historical bars or trades.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

DataArg = Annotated[Path, typer.Argument(help="Bars or trades: parquet, CSV, freqtrade .feather/.json, Binance "
                                              "public-data CSV, or a directory or glob of monthly files.")]
StrategyOpt = Annotated[str, typer.Option("--strategy", "-s", help="Built-in name or FILE.py:ClassName.",
                                          autocompletion=builtin_strategies)]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", "-p", help="Strategy parameter NAME=VALUE (repeatable).")]
SymbolOpt = Annotated[str | None, typer.Option("--symbol", help="Use only this symbol of the data; names it when the "
                                              "file has no symbol column (default: from a BTC_USDT-1m style name).")]
TimerangeOpt = Annotated[str | None, typer.Option("--timerange", help="Only rows from START to END (UTC, end excluded): "
                                                  "20240101-20240301, 20240101- or -20240301.")]
TimeframeOpt = Annotated[str | None, typer.Option("--timeframe", help="Resample bars, or trades to bars, of this "
                                                  "length: 1m, 5m, 1h, 1d...")]
CapitalOpt = Annotated[float, typer.Option("--capital", help="Initial capital, in the quote currency of the data's "
                                           "symbol (USDT for BTC-USDT, BTC for ETH-BTC).")]
TickOpt = Annotated[str | None, typer.Option("--tick-size", help="Price increment of the data's symbols (default: the "
                                             "venue's, or read from the prices).")]
LotOpt = Annotated[str | None, typer.Option("--lot-size", help="Quantity increment of the data's symbols (default: the "
                                            "venue's, or read from the volumes).")]
MakerOpt = Annotated[float, typer.Option("--maker-fee-bps", help="Maker fee in basis points (negative = rebate).")]
TakerOpt = Annotated[float, typer.Option("--taker-fee-bps", help="Taker fee in basis points.")]
SlipOpt = Annotated[float, typer.Option("--slippage-bps", help="Market orders fill this much worse than the reference price.")]
LatencyOpt = Annotated[float, typer.Option("--latency-ms", help="Trades: delay before an order reaches the venue.")]
QueueOpt = Annotated[str, typer.Option("--queue", help="Trades: 'through' (conservative) or 'touch'.")]
LimitOpt = Annotated[list[str] | None, typer.Option("--limit", help="Risk limit for the strategy account KEY=VALUE (repeatable).")]
VectorOpt = Annotated[bool, typer.Option("--vectorised/--no-vectorised", help="Use a strategy's vectorised signals on bars.")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code)


ENGINE_OPTIONS: dict[str, tuple[Any, Any]] = {
    "timerange": (TimerangeOpt, None),
    "timeframe": (TimeframeOpt, None),
    "capital": (CapitalOpt, 100_000.0),
    "tick_size": (TickOpt, None),
    "lot_size": (LotOpt, None),
    "maker_fee_bps": (MakerOpt, 1.0),
    "taker_fee_bps": (TakerOpt, 5.0),
    "slippage_bps": (SlipOpt, 0.0),
    "latency_ms": (LatencyOpt, 0.0),
    "queue": (QueueOpt, "through"),
    "limit": (LimitOpt, None),
    "vectorised": (VectorOpt, True),
}
"""The data window and the backtest engine's settings as CLI options (annotation, default), the same for run and sweep."""


def engine_options(command: Callable[..., None]) -> Callable[..., None]:
    """Gives `command` the ENGINE_OPTIONS in place of its `options` parameter (so they show where it
    stands in --help) and calls it with them checked, as the keyword arguments of `BacktestEngine`."""
    signature = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        if param.name == "options":
            parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                             annotation=annotation)
                           for name, (annotation, default) in ENGINE_OPTIONS.items()]
        else:
            parameters.append(param)

    @functools.wraps(command)
    def with_options(**values: Any) -> None:
        options = _options(**{name: values.pop(name) for name in ENGINE_OPTIONS})
        command(**values, options=options)

    with_options.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return with_options


def _options(timerange: str | None, timeframe: str | None, capital: float, tick_size: str | None,
             lot_size: str | None, maker_fee_bps: float, taker_fee_bps: float, slippage_bps: float, latency_ms: float,
             queue: str, limit: list[str] | None, vectorised: bool) -> dict[str, Any]:
    from tradsys.data_window import WindowError, parse_timeframe, parse_timerange

    try:
        if timerange:
            parse_timerange(timerange)
        if timeframe:
            parse_timeframe(timeframe)
    except WindowError as exc:
        raise _fail(str(exc)) from None
    if queue not in ("through", "touch"):
        raise _fail(f"--queue must be 'through' or 'touch', got {queue!r}")
    try:
        limit_values = {k: (None if v.lower() == "none" else v) for k, v in parse_assignments(limit).items()}
    except ParamError as exc:
        raise _fail(f"--limit: {exc}") from None
    for flag, value in (("--tick-size", tick_size), ("--lot-size", lot_size)):
        try:
            if value is not None and not Decimal(value) > 0:
                raise ValueError
        except (ArithmeticError, ValueError):
            raise _fail(f"{flag} must be a positive number, got {value!r}") from None
    return {"initial_capital": capital, "tick_size": tick_size, "lot_size": lot_size, "maker_fee_bps": maker_fee_bps, "taker_fee_bps": taker_fee_bps,
            "slippage_bps": slippage_bps, "latency_ms": latency_ms, "queue": queue, "limits": limit_values,
            "vectorised": vectorised, "window": {"timerange": timerange, "timeframe": timeframe}}


def run_backtest(data: str, strategy: str, params: dict[str, Any], symbol: str | None, options: dict[str, Any],
                 progress: Any = None) -> Any:
    from tradsys.backtest import BacktestEngine

    capital = options["initial_capital"]
    engine = BacktestEngine(capital, **{k: v for k, v in options.items() if k not in ("initial_capital", "window")})
    engine.add_strategy(strategy, params)
    engine.load_data(data, symbol, **options.get("window", {}))
    return engine.run(progress=progress)


@backtest_app.command()
@engine_options
def run(
    data: DataArg,
    strategy: StrategyOpt,
    param: ParamOpt = None,
    symbol: SymbolOpt = None,
    *,
    options: dict[str, Any],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write fills, trades, equity, summary and report.html here.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv for --out.")] = "parquet",
    report: Annotated[Path | None, typer.Option("--report", help="Write the HTML report here: price with buys and sells, equity, drawdown, trades.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal).")] = None,
    signals: Annotated[Path | None, typer.Option(
        "--signals", exists=True, dir_okay=False, help="Replay these recorded peers' signals (JSON lines, as "
        "`tradsys signals listen --json` writes them) to the strategy's on_signal at their times.")] = None,
) -> None:
    """Run one strategy over a data file and print its metrics.

    Example: tradsys backtest run examples/data/btc_bars_1m.csv --strategy sma_cross --param fast=10 --param slow=30
    """
    from tradsys.backtest.html_report import write_html
    from tradsys.backtest.report import summary_table

    if fmt not in ("parquet", "csv"):
        raise _fail("--format must be parquet or csv")
    if signals is not None:
        options = {**options, "signals": signals}
    try:
        params = parse_assignments(param)
        show = err.is_terminal if progress is None else progress
        if show and not as_json:
            with Progress(TextColumn("backtest"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                          TimeRemainingColumn(), console=err, transient=True) as bar:
                task = bar.add_task("run", total=1)

                def update(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                result = run_backtest(str(data), strategy, params, symbol, options, update)
        else:
            result = run_backtest(str(data), strategy, params, symbol, options)
    except (ParamError, DataError, StrategyNotFound) as exc:
        raise _fail(str(exc)) from None
    if out_dir is not None:
        written = result.write(out_dir, fmt)
        if not as_json:
            err.print(f"wrote {', '.join(str(p) for p in written)}")
    if report is not None:
        err.print(f"wrote {write_html(result, report)}")
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if as_json:
        typer.echo(result.to_json())
    else:
        out.print(summary_table(result))
        for s in result.strategies:
            if s["state"] == "failed":
                err.print(f"[red]strategy {s['name']} failed:[/] {s['error']}")
    if any(s["state"] == "failed" for s in result.strategies):
        raise typer.Exit(1)


@backtest_app.command()
def strategies(
    name: Annotated[str | None, typer.Argument(help="A strategy (built-in or FILE.py:Class) to describe.",
                                               autocompletion=builtin_strategies)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the strategies and their parameters as JSON.")] = False,
) -> None:
    """List the built-in strategies and their parameters.

    Example: tradsys backtest strategies sma_cross
    """
    try:
        classes = {name: load_strategy(name)} if name else dict(BUILTINS)
    except StrategyNotFound as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"strategies": [
            {"name": kind, "summary": cls.summary(), "params": [
                {"name": pname, "type": spec.type_name, "default": spec.default_text() or None,
                 "required": spec.required, "description": spec.description}
                for pname, spec in cls.params.items()]}
            for kind, cls in classes.items()]}))
        return
    out.print(params_table(classes))


def params_table(classes: dict[str, Any]) -> Table:
    table = Table(title="Strategies")
    for col in ("strategy", "parameter", "type", "default", "description"):
        table.add_column(col)
    for kind, cls in classes.items():
        table.add_row(f"[bold]{kind}[/]", "", "", "", cls.summary())
        for pname, spec in cls.params.items():
            table.add_row("", pname, spec.type_name, spec.default_text() or ("(required)" if spec.required else ""),
                          spec.description)
    return table


importlib.import_module("tradsys.cli.sweep")  # registers `backtest sweep` (its own module: the parallel search)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(backtest_app())
