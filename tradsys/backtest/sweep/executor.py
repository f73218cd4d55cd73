"""Handing a sweep's tasks to its runner (local or Ray): a task whose row the results folder already
has (--resume) or that is asked for twice is not run again, and every new row is recorded and
reported as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from tradsys.backtest.sweep.store import ResultStore
from tradsys.backtest.sweep.task import Task

RowFn = Callable[[dict[str, Any], bool], None]
"""Called with each row as it is known, and whether it was skipped (finished before)."""


class Runner(Protocol):
    def run(self, tasks: Iterable[Task]) -> Iterator[dict[str, Any]]: ...


class Executor:
    def __init__(self, runner: Runner, store: ResultStore, on_row: RowFn | None = None) -> None:
        self.runner, self.store, self.on_row = runner, store, on_row
        self.ran = 0
        self.skipped = 0
        self.returned: list[dict[str, Any]] = []
        """Every row `run` returned, in order."""

    def run(self, tasks: list[Task]) -> list[dict[str, Any]]:
        """The tasks' rows, in the tasks' order (whatever order they finished in)."""
        todo: list[Task] = []
        seen: set[str] = set()
        for task in tasks:
            if task.key in seen:
                continue
            seen.add(task.key)
            if task.key in self.store.rows:
                self.skipped += 1
                self._report(self.store.rows[task.key], True)
            else:
                todo.append(task)
        for row in self.runner.run(todo):
            self.ran += 1
            self.store.add(row)
            self._report(row, False)
        rows = [self.store.rows[task.key] for task in tasks]
        self.returned += rows
        return rows

    def _report(self, row: dict[str, Any], skipped: bool) -> None:
        if self.on_row is not None:
            self.on_row(row, skipped)
