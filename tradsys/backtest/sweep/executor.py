"""Handing a sweep's tasks to its runner (local or Ray): a task whose row the results folder already
has (--resume) or that is asked for twice is not run again, and every new row is recorded and
reported as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from tradsys.backtest.sweep.store import ResultStore
from tradsys.backtest.sweep.task import Task

RowFn = Callable[[dict[str, Any], bool], None]
"""Called with each task's row as it is known, and whether it was not run for it (finished before,
or the same parameters asked for again)."""


class Runner(Protocol):
    """Where tasks run (`local.LocalRunner`, `ray_runner.RayRunner`); a context manager."""

    where: str
    """For people: "this machine", "Ray at HOST:PORT"."""

    @property
    def slots(self) -> int:
        """Tasks that run at once."""
        ...

    def run(self, tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
        """Each task's row as it finishes, in any order."""
        ...

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc: Any) -> None: ...


class Executor:
    def __init__(self, runner: Runner, store: ResultStore, on_row: RowFn | None = None) -> None:
        self.runner, self.store, self.on_row = runner, store, on_row
        self.ran = 0
        self.skipped = 0
        """Tasks whose rows the results folder had (--resume)."""
        self.returned: list[dict[str, Any]] = []
        """Every row `run` returned, in order."""

    def run(self, tasks: list[Task]) -> list[dict[str, Any]]:
        """The tasks' rows, in the tasks' order (whatever order they finished in)."""
        todo: list[Task] = []
        repeats: list[Task] = []
        queued: set[str] = set()
        for task in tasks:
            known = self.store.rows.get(task.key)
            if known is not None:
                if task.key in self.store.loaded:
                    self.skipped += 1
                self._report(known, True)
            elif task.key in queued:
                repeats.append(task)
            else:
                queued.add(task.key)
                todo.append(task)
        for row in self.runner.run(todo):
            self.ran += 1
            self.store.add(row)
            self._report(row, False)
        for task in repeats:
            self._report(self.store.rows[task.key], True)
        rows = [self.store.rows[task.key] for task in tasks]
        self.returned += rows
        return rows

    def _report(self, row: dict[str, Any], skipped: bool) -> None:
        if self.on_row is not None:
            self.on_row(row, skipped)
