"""`tradsys backtest sweep`: a parameter grid or an Optuna search, on every core or a Ray cluster,
optionally walk-forward; the work is `tradsys.backtest.sweep`'s, this module reads the options and
shows the results.

Exit codes: 0 done, 2 usage (a bad option, data that cannot be read, a results folder of another
sweep, Ray or Optuna not installed), 3 no Ray cluster at --ray, 130 interrupted (the rows that
finished are kept in --out; --resume goes on from there).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tradsys.cli.backtest import DataArg, ParamOpt, StrategyOpt, SymbolOpt, backtest_app, engine_options, err
from tradsys.data import DataError
from tradsys.engine.strategy import ParamError, StrategyNotFound, load_strategy, parse_assignments

EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
REASONS = {2: "usage", EXIT_UNREACHABLE: "unreachable", EXIT_INTERRUPTED: "interrupted"}
"""The `reason` of a --json error document, by exit code."""


@backtest_app.command()
@engine_options
def sweep(
    data: DataArg,
    strategy: StrategyOpt,
    grid: Annotated[list[str] | None, typer.Option("--grid", "-g", help="NAME=V1,V2,... (repeatable): the values "
                                                   "to try; with --search optuna, the choices it picks from.")] = None,
    param: ParamOpt = None,
    symbol: SymbolOpt = None,
    *,
    options: dict[str, Any],
    search: Annotated[str, typer.Option("--search", help="grid (every combination) or optuna (TPE search over "
                                        "--param-range).")] = "grid",
    param_range: Annotated[list[str] | None, typer.Option("--param-range", help="NAME=LOW:HIGH[:int|float|log] "
                                                          "(repeatable), for --search optuna.")] = None,
    trials: Annotated[int, typer.Option("--trials", help="Optuna: runs to try (per walk-forward fold).")] = 100,
    batch: Annotated[int, typer.Option("--batch", help="Optuna: trials proposed at once and run in parallel; "
                                       "results depend on it and --seed, not on the machine. Set it to the "
                                       "workers you have.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Optuna: the sampler's seed.")] = 0,
    objective_name: Annotated[str, typer.Option("--objective", "--rank", help="Metric to rank by and optimise: "
                                                "sharpe, return, calmar or any result metric.")] = "sharpe",
    direction: Annotated[str | None, typer.Option("--direction", help="max or min (default: the metric's better "
                                                  "one: min for drawdowns, volatility, fees).")] = None,
    walk_forward: Annotated[int | None, typer.Option("--walk-forward", help="K folds: optimise on each part of "
                                                     "the data, test the best on the part after it.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Processes (default: all cores); with --ray, "
                                                "tasks at once (default: the cluster's CPUs).")] = None,
    ray: Annotated[str | None, typer.Option("--ray", help="Run on a Ray cluster: auto (the one this machine "
                                            "belongs to), HOST:PORT or ray://HOST:PORT.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Keep the results here as they finish "
                                                 "(results.parquet, results.jsonl).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Go on with the sweep in --out: skip what finished.")] = False,
    top: Annotated[int | None, typer.Option("--top", help="Show only the best N.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar and best runs so "
                                                  "far (default: on a terminal).")] = None,
) -> None:
    """Run a parameter grid or search on all cores (or a Ray cluster) and rank the results.

    Example: tradsys backtest sweep examples/data/btc_bars_1m.csv --strategy sma_cross --grid fast=5,10,20 --grid slow=50,100
    """
    from tradsys.backtest.sweep import SweepError, SweepSettings, objective, parse_grid, parse_ranges, run_sweep
    from tradsys.backtest.sweep.ray_runner import RayUnreachable
    from tradsys.cli.output import console
    from tradsys.cli.sweep_view import LiveView, caption, results_table, walk_forward_table
    from tradsys.data import load_market_data

    def fail(message: str, code: int = 2) -> typer.Exit:
        if as_json:
            typer.echo(json.dumps({"error": {"exit_code": code, "reason": REASONS[code], "message": message}}))
        err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
        return typer.Exit(code)

    try:
        specs = load_strategy(strategy).params
        settings = SweepSettings(
            strategy, parse_assignments(param), {k: v for k, v in options.items() if k != "window"},
            parse_grid(grid, specs), search, parse_ranges(param_range, specs), trials, batch, seed,
            objective(objective_name, direction), walk_forward, workers, ray, out_dir, resume)
        settings.check()
        market = load_market_data(str(data), symbol, **options["window"])
    except (ParamError, StrategyNotFound, DataError, SweepError) as exc:
        raise fail(str(exc)) from None
    names = [*settings.grid, *(r.name for r in settings.ranges)]
    show = err.is_terminal if progress is None else progress
    view = LiveView(err, settings.objective, names) if show and not as_json else None
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is for the results: Ray prints its errors there
            if view is not None:
                with view:
                    report = run_sweep(market, settings, view.start, view.row)
            else:
                report = run_sweep(market, settings)
    except RayUnreachable as exc:
        raise fail(str(exc), EXIT_UNREACHABLE) from None
    except SweepError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        kept = f"; the finished runs are in {out_dir}: the same command with --resume goes on" if out_dir else ""
        raise fail(f"interrupted{kept}", EXIT_INTERRUPTED) from None
    results = report.results[:top] if top is not None else report.results
    if as_json:
        doc = {"objective": report.objective.metric, "direction": report.objective.direction, "search": search,
               "ran": report.ran, "skipped": report.skipped, "best": _public(report.best),
               "walk_forward": report.walk_forward, "results": [_public(r) for r in results]}
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    if report.walk_forward is not None:
        shown = walk_forward_table(report.walk_forward, names)
    else:
        shown = results_table(results, names, report.objective,
                              f"{strategy}: {len(report.results)} runs, ranked by {report.objective.metric} "
                              f"({report.objective.direction})")
    console.print(shown)
    console.print(caption(report), soft_wrap=True)


def _public(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A row as --json prints it (without the internal key)."""
    return None if row is None else {k: v for k, v in row.items() if k != "key"}
