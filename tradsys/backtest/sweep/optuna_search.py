"""A search smarter than a grid (`--search optuna`): Optuna's TPE sampler proposes parameters from
the ranges (and a grid's values, as choices), learning from the results so far.

Reproducible: the sampler is seeded, and trials are asked in batches of `batch`; a batch's tasks
run at once (on local workers or Ray), and their results are told to the study in trial order once
the whole batch is in, whatever order they finished in. So a seed and a batch size give the same
trials and results on one worker, on all cores or on a cluster. Within a batch the sampler
assumes the trials still running score badly (`constant_liar`), so it spreads them out. A trial
whose run failed, or whose objective has no value, is told as failed: the sampler ignores it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from tradsys.backtest.sweep.errors import SweepError
from tradsys.backtest.sweep.objective import Objective
from tradsys.backtest.sweep.space import ParamRange
from tradsys.backtest.sweep.task import Task

INSTALL = "pip install 'tradsys[optuna]'"


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise SweepError(f"--search optuna needs Optuna, which is not installed here: {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def search(execute: Callable[[list[Task]], list[dict[str, Any]]], objective: Objective, ranges: list[ParamRange],
           choices: Mapping[str, list[str]], fixed: Mapping[str, Any], trials: int, batch: int, seed: int,
           window: tuple[int, int] | None = None, fold: int | None = None) -> list[dict[str, Any]]:
    """`trials` trials' rows, in trial order; `execute` runs a batch of tasks, returning their rows in order."""
    optuna = import_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    study = optuna.create_study(direction="maximize" if objective.maximise else "minimize", sampler=sampler)
    rows: list[dict[str, Any]] = []
    while len(rows) < trials:
        asked = [study.ask() for _ in range(min(batch, trials - len(rows)))]
        tasks = [Task(_suggest(trial, ranges, choices, fixed), window, fold, "in" if fold is not None else None,
                      trial.number) for trial in asked]
        results = execute(tasks)
        for trial, row in zip(asked, results):
            value = objective.value(row)
            if value is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, value)
        rows += results
    return rows


def _suggest(trial: Any, ranges: list[ParamRange], choices: Mapping[str, list[str]],
             fixed: Mapping[str, Any]) -> dict[str, Any]:
    params = dict(fixed)
    for r in ranges:
        if r.kind == "int":
            params[r.name] = trial.suggest_int(r.name, int(r.low), int(r.high))
        else:
            params[r.name] = trial.suggest_float(r.name, r.low, r.high, log=r.kind == "log")
    for name, values in choices.items():
        params[name] = trial.suggest_categorical(name, values)
    return params
