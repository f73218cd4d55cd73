"""Running a sweep's tasks on this machine: in worker processes, or in this process for one worker.

Workers are spawned (polars' threads make forking unsafe) and each opens the data file once, for
its first task; a task carries only its parameters. At most two tasks per worker are queued at a
time, so a sweep of any size holds little and an interruption loses little. A worker that dies
(killed, out of memory, a crash in native code) breaks the pool: a new pool takes the unfinished
tasks, and a task in flight at MAX_ATTEMPTS deaths is reported as an error instead of run again.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from tradsys.backtest.sweep.dataset import Dataset
from tradsys.backtest.sweep.task import SweepJob, Task, error_row, run_task

MAX_ATTEMPTS = 3
"""Worker deaths a task may be caught in before it is reported as an error."""
QUEUED_PER_WORKER = 2
WAKE_S = 0.25
"""The longest this thread waits for a result at once: a signal (Ctrl-C) that another thread took is
handled by this one only when it wakes."""

_setup: tuple[Path, SweepJob] | None = None
"""A worker process's data file and job, from its initializer."""
_worker: tuple[Dataset, SweepJob] | None = None
"""The data, opened once, and the job."""


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalRunner:
    """Runs tasks in `workers` processes (in this one when `workers` is 1); use as a context manager."""

    def __init__(self, data_path: Path, job: SweepJob, workers: int) -> None:
        self.data_path, self.job, self.workers = data_path, job, max(1, workers)
        self.where = "this machine"
        self._pool: ProcessPoolExecutor | None = None
        self._data: Dataset | None = None

    def __enter__(self) -> LocalRunner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def slots(self) -> int:
        return self.workers

    def run(self, tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
        """Each task's row as it finishes (in any order)."""
        if self.workers == 1:
            if self._data is None:
                self._data = Dataset.open(self.data_path)
            for task in tasks:
                yield run_task(self._data, self.job, task)
            return
        pending = list(tasks)[::-1]  # popped from the end: first given, first submitted
        attempts: dict[int, int] = {}
        running: dict[Future[dict[str, Any]], Task] = {}
        while pending or running:
            pool = self._ensure_pool()
            while pending and len(running) < self.workers * QUEUED_PER_WORKER:
                task = pending.pop()
                running[pool.submit(_run, task)] = task
            done, _ = wait(running, timeout=WAKE_S, return_when=FIRST_COMPLETED)
            lost: list[Task] = []
            for future in done:
                task = running.pop(future)
                try:
                    row = future.result()
                except BrokenProcessPool:
                    lost.append(task)
                    continue
                except Exception as exc:  # the worker could not open the data
                    row = error_row(task, f"{type(exc).__name__}: {exc}")
                yield row
            if lost:  # the pool is gone: every task in it is lost, the one that killed it among them
                lost += running.values()
                running.clear()
                self.close()
                for task in lost:
                    attempts[id(task)] = attempts.get(id(task), 0) + 1
                    if attempts[id(task)] < MAX_ATTEMPTS:
                        pending.append(task)
                    else:
                        yield error_row(task, f"the worker process died {MAX_ATTEMPTS} times running it")

    def close(self) -> None:
        """Stops the workers at once (tasks still running are abandoned)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(self.data_path, self.job))
        return self._pool


def _start_worker(data_path: Path, job: SweepJob) -> None:
    global _setup
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    threading.Thread(target=_exit_with_parent, name="sweep-parent-watch", daemon=True).start()
    _setup = (data_path, job)


def _exit_with_parent() -> None:
    """Ends this worker when the sweep's process ends, however it ends: a worker blocks on a queue
    that it holds both ends of, so it would never see the parent go."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)


def _run(task: Task) -> dict[str, Any]:
    """In a worker: the task, on the data opened by the worker's first task."""
    global _worker
    if _worker is None:
        assert _setup is not None, "the worker's initializer did not run"
        _worker = (Dataset.open(_setup[0]), _setup[1])
    return run_task(_worker[0], _worker[1], task)
