"""Running a sweep's tasks as Ray tasks on a cluster (`--ray auto|HOST:PORT|ray://HOST:PORT`).

The data go to the cluster once, through Ray's object store: the arrow file's bytes are put
once, each node fetches them once, and each worker process decodes them once and keeps the frame
for all its tasks. The object store needs nothing from the nodes but Ray itself, where a path
every node can read needs a shared filesystem most clusters do not have. A strategy file goes
with the job (its text), so nodes need not have it either; `tradsys` itself must be installed on
every node. A worker that dies is retried by Ray (MAX_RETRIES); a task that still fails is
reported as an error row.

Ray 2.60 turns token authentication on for a cluster whose head has a token
(`~/.ray/auth_token`, which `ray.init()` writes on first use): a machine that joins it or sends it
work needs the same token (`RAY_AUTH_TOKEN`, or the file); `RAY_AUTH_MODE=disabled` on every
machine turns it off, for a trusted network only.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tradsys.backtest.sweep.dataset import Dataset, load_meta
from tradsys.backtest.sweep.errors import SweepError
from tradsys.backtest.sweep.local import WAKE_S
from tradsys.backtest.sweep.task import SweepJob, Task, error_row, run_task

MAX_RETRIES = 3
"""Times Ray runs a task again after its worker died."""
QUEUED_PER_CPU = 2
CONNECT_TIMEOUT_S = 10.0
INSTALL = "pip install 'tradsys[ray]'"
START_HINT = "none runs on this machine: start one with `ray start --head`, or give --ray HOST:PORT"
AUTH_HINT = ("if the cluster runs with a login token (Ray 2.60 turns one on when the head has ~/.ray/auth_token), "
             "give this machine the same token: RAY_AUTH_TOKEN=<`ray get-auth-token` on the head>, or copy the "
             "file; or start every machine of the cluster with RAY_AUTH_MODE=disabled on a network you trust")

_cache: dict[str, Any] = {}
"""A Ray worker's data and job, by their object ids: fetched once per worker process."""


class RayUnreachable(SweepError):
    """No Ray cluster answered at the address given."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SweepError(f"--ray needs Ray, which is not installed here: {INSTALL} (on every machine of the "
                         "cluster, with tradsys)") from None
    return ray


class RayRunner:
    """Runs tasks on the Ray cluster at `address`; use as a context manager. A Ray connection this
    process already has (`ray.init()` called before) is used as it is and left open."""

    def __init__(self, address: str, data_path: Path, job: SweepJob, workers: int | None = None) -> None:
        self.address, self.data_path, self.job, self.workers = address, data_path, job.with_source(), workers
        self.where = f"Ray at {address}"
        self.ray = import_ray()
        self._owned = False
        self._refs: list[Any] = []
        self._running: dict[Any, Task] = {}

    def __enter__(self) -> RayRunner:
        ray = self.ray
        if not ray.is_initialized():
            check_reachable(self.address)
            try:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            except ConnectionError as exc:
                found_none = "Could not find any running Ray instance" in str(exc)
                raise RayUnreachable(f"no Ray cluster at {self.address!r}: "
                                     f"{START_HINT if found_none else f'{exc}; {AUTH_HINT}'}") from None
            self._owned = True
        self._refs = [ray.put((self.data_path.read_bytes(), load_meta(self.data_path))), ray.put(self.job)]
        self._remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_ray_task)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def slots(self) -> int:
        """Tasks at once: --workers, or the cluster's CPUs."""
        if self.workers:
            return self.workers
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def run(self, tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
        """Each task's row as it finishes (in any order)."""
        ray = self.ray
        pending = list(tasks)[::-1]
        limit = self.slots * QUEUED_PER_CPU
        running = self._running
        while pending or running:
            while pending and len(running) < limit:
                task = pending.pop()
                running[self._remote.remote(self._refs, task)] = task
            ready, _ = ray.wait(list(running), num_returns=1, timeout=WAKE_S)
            for ref in ready:
                task = running.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:
                    yield error_row(task, f"Ray could not run it ({MAX_RETRIES} retries): {exc}".splitlines()[0])

    def close(self) -> None:
        """Cancels what is still running; disconnects when this runner connected."""
        for ref in list(self._running):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is gone: nothing to cancel
                pass
        self._running.clear()
        if self._owned:
            self._owned = False
            self.ray.shutdown()


def check_reachable(address: str) -> None:
    """Fails at once when nothing listens at HOST:PORT (Ray itself would retry for minutes)."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise SweepError(f"--ray {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RayUnreachable(f"no Ray cluster at {address!r}: {exc}") from None


def _ray_task(refs: list[Any], task: Task) -> dict[str, Any]:
    """In a Ray worker: the data and job from the object store (once per process), then the task."""
    import ray

    data_ref, job_ref = refs
    if _cache.get("id") != data_ref.hex():
        blob, meta = ray.get(data_ref)
        _cache.update(id=data_ref.hex(), data=Dataset.from_bytes(blob, meta), job=ray.get(job_ref))
    return run_task(_cache["data"], _cache["job"], task)
