"""A whole sweep: its settings checked, the data written once, the runner chosen (local workers or
Ray), the search run (a grid, or Optuna; either inside walk-forward folds), the results kept."""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradsys.backtest.sweep import optuna_search, walk_forward as wf
from tradsys.backtest.sweep.dataset import Dataset, facts
from tradsys.backtest.sweep.errors import SweepError
from tradsys.backtest.sweep.executor import Executor, RowFn, Runner
from tradsys.backtest.sweep.local import LocalRunner, default_workers
from tradsys.backtest.sweep.objective import Objective, objective
from tradsys.backtest.sweep.space import ParamRange, combinations, typed
from tradsys.backtest.sweep.store import TABLE, ResultStore
from tradsys.backtest.sweep.task import SweepJob, Task
from tradsys.data import MarketData
from tradsys.engine.strategy import load_strategy

SEARCHES = ("grid", "optuna")
MAX_COMBINATIONS = 1_000_000
"""A grid's bound: its combinations are listed before they run."""
DEFAULT_BATCH = 8
"""Optuna trials asked at once: fixed, not the number of workers, so results do not depend on the machine."""


@dataclass
class SweepSettings:
    strategy: str
    fixed: dict[str, Any] = field(default_factory=dict)
    """Parameters every run gets (--param)."""
    options: dict[str, Any] = field(default_factory=dict)
    """`BacktestEngine`'s keyword arguments."""
    grid: dict[str, list[str]] = field(default_factory=dict)
    """A grid's values; with Optuna, choices it picks from."""
    search: str = "grid"
    ranges: list[ParamRange] = field(default_factory=list)
    trials: int = 100
    batch: int = DEFAULT_BATCH
    seed: int = 0
    objective: Objective = field(default_factory=lambda: objective("sharpe"))
    walk_forward: int | None = None
    workers: int | None = None
    """Processes here (default: every core), or tasks at once on Ray (default: the cluster's CPUs)."""
    ray: str | None = None
    """auto, HOST:PORT or ray://HOST:PORT: run on that Ray cluster."""
    out: Path | None = None
    resume: bool = False

    def check(self) -> None:
        if self.search not in SEARCHES:
            raise SweepError(f"--search must be grid or optuna, got {self.search!r}")
        if self.search == "grid":
            if not self.grid:
                raise SweepError("a grid search needs --grid NAME=V1,V2,... (or --search optuna with --param-range)")
            if self.ranges:
                raise SweepError("--param-range needs --search optuna")
            size = math.prod(len(values) for values in self.grid.values())
            if size > MAX_COMBINATIONS:
                raise SweepError(f"the grid has {size:,} combinations, over {MAX_COMBINATIONS:,}: "
                                 "search it with --search optuna and --param-range instead")
        elif not (self.ranges or self.grid):
            raise SweepError("--search optuna needs --param-range NAME=LOW:HIGH (or --grid values to choose from)")
        both = sorted(set(self.grid) & {r.name for r in self.ranges})
        if both:
            raise SweepError(f"{', '.join(both)}: given both --grid and --param-range")
        for name, value in (("--trials", self.trials), ("--batch", self.batch)):
            if value < 1:
                raise SweepError(f"{name} must be at least 1, got {value}")
        if self.workers is not None and self.workers < 1:
            raise SweepError(f"--workers must be at least 1, got {self.workers}")
        if self.resume and self.out is None:
            raise SweepError("--resume needs --out DIR, the folder of the sweep to continue")

    def spec(self, data: MarketData) -> dict[str, Any]:
        """What the rows depend on (see `store`); --trials and --workers are not in it: a resumed
        search may run more trials, on other machines."""
        path, _, _ = self.strategy.partition(":")
        source = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path.endswith(".py") else None
        search: dict[str, Any] = {"kind": self.search}
        if self.search == "optuna":
            search.update(ranges=[vars(r) for r in self.ranges], choices=self.grid, seed=self.seed,
                          batch=self.batch, objective=self.objective.metric, direction=self.objective.direction)
        return {"data": facts(data), "strategy": self.strategy, "strategy_sha256": source, "fixed": self.fixed,
                "options": self.options, "walk_forward": self.walk_forward, "search": search}


@dataclass
class SweepReport:
    results: list[dict[str, Any]]
    """This sweep's rows (each task once): ranked by the objective, or in fold order for walk-forward."""
    objective: Objective
    best: dict[str, Any] | None
    walk_forward: dict[str, Any] | None
    ran: int
    skipped: int
    """Tasks whose rows were in the results folder already (--resume)."""
    workers: int
    where: str
    table: Path | None


StartFn = Callable[[int, int, str], None]
"""Called once the sweep knows it: its number of tasks, workers (or Ray slots), and where it runs."""


def run_sweep(data: MarketData, settings: SweepSettings, on_start: StartFn | None = None,
              on_row: RowFn | None = None) -> SweepReport:
    settings.check()
    specs = load_strategy(settings.strategy).params
    store = ResultStore(settings.out, settings.spec(data), settings.resume, lambda p: typed(p, specs))
    combos = combinations(settings.grid, settings.fixed)
    per_fold = len(combos) if settings.search == "grid" else settings.trials
    folds = wf.folds((data.start_ns or 0, (data.end_ns or 0) + 1), settings.walk_forward) \
        if settings.walk_forward else None
    total = per_fold if folds is None else (per_fold + 1) * len(folds)
    job = SweepJob(settings.strategy, settings.options)
    with tempfile.TemporaryDirectory(prefix="tradsys-sweep-") as scratch:
        data_path = Dataset.write(data, settings.out or Path(scratch))
        if settings.ray is not None:
            from tradsys.backtest.sweep.ray_runner import RayRunner

            runner: Runner = RayRunner(settings.ray, data_path, job, settings.workers)
        else:
            workers = min(settings.workers or default_workers(), total if settings.search == "grid"
                          else settings.batch)
            runner = LocalRunner(data_path, job, workers)
        try:
            with runner:
                slots = runner.slots
                if on_start is not None:
                    on_start(total, slots, runner.where)
                execute = Executor(runner, store, on_row)
                results, walk = _search(execute, settings, combos, folds)
        finally:
            store.close()
    table = settings.out / TABLE if settings.out is not None else None
    best = settings.objective.best(results) if walk is None else None
    return SweepReport(results, settings.objective, best, walk, execute.ran, execute.skipped, slots, runner.where,
                       table)


def _search(execute: Executor, settings: SweepSettings, combos: list[dict[str, Any]],
            folds: list[wf.Fold] | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(rows, walk-forward report or None)."""
    def optimise(window: tuple[int, int] | None, fold: int | None) -> list[dict[str, Any]]:
        if settings.search == "grid":
            sample = None if fold is None else "in"
            return execute.run([Task(params, window, fold, sample) for params in combos])
        return optuna_search.search(execute.run, settings.objective, settings.ranges, settings.grid, settings.fixed,
                                    settings.trials, settings.batch, settings.seed, window, fold)

    if folds is None:
        return settings.objective.ranked(_unique(optimise(None, None))), None

    def optimise_folds(fold_list: list[wf.Fold]) -> dict[int, list[dict[str, Any]]]:
        if settings.search == "grid":  # every fold's runs at once: no worker waits for a fold to end
            tasks = [Task(params, f.in_sample, f.index, "in") for f in fold_list for params in combos]
            rows = execute.run(tasks)
            return {f.index: [r for r in rows if r["fold"] == f.index] for f in fold_list}
        return {f.index: optimise(f.in_sample, f.index) for f in fold_list}

    report = wf.walk_forward(folds, optimise_folds, execute.run, settings.objective)
    return _unique(execute.returned), report


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each task's row once (a search may ask for the same parameters twice), first seen first."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out.setdefault(row["key"], row)
    return list(out.values())
