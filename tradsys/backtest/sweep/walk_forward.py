"""Walk-forward validation (`--walk-forward K`): does a sweep's best choice hold up on data it has not seen?

The data's time range is cut into K + 1 equal parts. Fold i optimises on part i (in-sample) and
runs the best parameters it found on part i + 1 (out-of-sample), which follows it: together the
out-of-sample parts cover the last K/(K + 1) of the data, each traded with parameters chosen on
the data just before it. An out-of-sample objective far below the in-sample one is overfitting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from tradsys.backtest.sweep.errors import SweepError
from tradsys.backtest.sweep.objective import Objective
from tradsys.backtest.sweep.task import Task


@dataclass(frozen=True)
class Fold:
    index: int
    in_sample: tuple[int, int]
    """[start, end) in ns."""
    out_of_sample: tuple[int, int]


def folds(span: tuple[int, int], k: int) -> list[Fold]:
    """K folds over [start, end): see the module doc."""
    if k < 1:
        raise SweepError(f"--walk-forward must be at least 1, got {k}")
    start, end = span
    bounds = [start + (end - start) * j // (k + 1) for j in range(k + 2)]
    if len(set(bounds)) < len(bounds):
        raise SweepError(f"--walk-forward {k}: the data's time range is too short to cut into {k + 1} parts")
    return [Fold(i, (bounds[i], bounds[i + 1]), (bounds[i + 1], bounds[i + 2])) for i in range(k)]


def walk_forward(fold_list: list[Fold], optimise: Callable[[list[Fold]], dict[int, list[dict[str, Any]]]],
                 execute: Callable[[list[Task]], list[dict[str, Any]]], objective: Objective) -> dict[str, Any]:
    """Optimises every fold in-sample (`optimise` returns each fold's rows), runs each fold's best
    out-of-sample; returns the report: each fold's windows, best parameters and both results."""
    in_rows = optimise(fold_list)
    best = {fold.index: objective.best(in_rows[fold.index]) for fold in fold_list}
    tasks = [Task(row["params"], fold.out_of_sample, fold.index, "out")
             for fold in fold_list if (row := best[fold.index]) is not None]
    out_rows = {row["fold"]: row for row in execute(tasks)}
    reports = []
    for fold in fold_list:
        chosen, tested = best[fold.index], out_rows.get(fold.index)
        reports.append({
            "fold": fold.index, "in_sample": list(fold.in_sample), "out_of_sample": list(fold.out_of_sample),
            "runs": len(in_rows[fold.index]),
            "params": None if chosen is None else chosen["params"],
            "in_sample_value": None if chosen is None else objective.value(chosen),
            "out_of_sample_value": None if tested is None else objective.value(tested),
            "in_sample_metrics": None if chosen is None else chosen["metrics"],
            "out_of_sample_metrics": None if tested is None else tested["metrics"],
            "out_of_sample_state": None if tested is None else tested["state"],
            "out_of_sample_error": None if tested is None else tested["error"],
        })
    return {"objective": objective.metric, "direction": objective.direction, "folds": reports,
            "in_sample_mean": _mean(r["in_sample_value"] for r in reports),
            "out_of_sample_mean": _mean(r["out_of_sample_value"] for r in reports)}


def _mean(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None
