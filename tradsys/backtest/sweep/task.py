"""One combination of a sweep and the one function that runs it, wherever it runs: in this process,
in a local worker process or in a Ray task."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradsys.backtest.engine import BacktestEngine
from tradsys.backtest.sweep.dataset import Dataset
from tradsys.engine.strategy import Strategy, load_strategy


@dataclass(frozen=True)
class SweepJob:
    """What every combination of a sweep shares."""

    strategy: str
    """A built-in name or FILE.py[:Class]."""
    options: dict[str, Any] = field(default_factory=dict)
    """`BacktestEngine`'s keyword arguments (initial_capital, fees, fill rules, limits...)."""
    strategy_source: str | None = None
    """A strategy file's text, sent along to machines that may not have the file (Ray)."""

    def with_source(self) -> SweepJob:
        """This job carrying its strategy file's text, when the strategy is a file."""
        path, _, _ = self.strategy.partition(":")
        if not path.endswith(".py"):
            return self
        return SweepJob(self.strategy, self.options, Path(path).expanduser().read_text())

    def strategy_class(self) -> type[Strategy]:
        """The strategy; a file sent as text is written once per machine (by its content's hash) and loaded."""
        if self.strategy_source is None:
            return load_strategy(self.strategy)
        path_text, sep, name = self.strategy.partition(":")
        digest = hashlib.sha256(self.strategy_source.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / "tradsys-strategies" / digest / Path(path_text).name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(self.strategy_source)
            tmp.replace(path)
        return load_strategy(f"{path}{sep}{name}")


@dataclass(frozen=True)
class Task:
    """One backtest of a sweep: the strategy's parameters, and for walk-forward the fold's window."""

    params: dict[str, Any]
    window: tuple[int, int] | None = None
    """[start, end) in ns; None for the whole data."""
    fold: int | None = None
    sample: str | None = None
    """"in" (optimised on) or "out" (tested on) for a walk-forward fold."""
    trial: int | None = None
    """The optimiser's trial number."""

    @property
    def key(self) -> str:
        """What identifies the task's result, for --resume."""
        return json.dumps({"params": self.params, "fold": self.fold, "sample": self.sample}, sort_keys=True,
                          default=str)


def run_task(data: Dataset, job: SweepJob, task: Task) -> dict[str, Any]:
    """The task's result row: its metrics, or the error that stopped it (never raises)."""
    started = time.perf_counter()
    try:
        engine = BacktestEngine(**job.options)
        engine.add_strategy(job.strategy_class(), task.params)
        engine.load_data(data.market(task.window))
        result = engine.run()
    except Exception as exc:
        row = error_row(task, f"{type(exc).__name__}: {exc}")
    else:
        state = result.strategies[0]
        row = _row(task, metrics=result.to_dict()["metrics"], state=state["state"], error=state["error"],
                   warnings=result.warnings)
    row["elapsed_s"] = time.perf_counter() - started
    return row


def error_row(task: Task, message: str) -> dict[str, Any]:
    """The row of a task that could not run."""
    return _row(task, metrics={}, state="error", error=message, warnings=[], elapsed_s=None)


def _row(task: Task, **values: Any) -> dict[str, Any]:
    return {"key": task.key, "params": task.params, "fold": task.fold, "sample": task.sample, "trial": task.trial,
            **values}
