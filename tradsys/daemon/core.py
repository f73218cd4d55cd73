"""The engine: the one place the live venue is touched, by one thread at a time.

Clients (gRPC handlers, WebSocket sessions) submit commands in the journal format and wait on a
future. The engine thread takes whatever is queued, stamps ids and times, applies it to the
venue, lets the actors (simulated market, strategies) and the clock act, and has the whole batch
written to the store in one transaction (group commit: one fsync for many commands). Only once
the batch is durable are its futures resolved and its listeners told: nobody is acknowledged,
and nothing is published, before it is durable.

A thread that blocks for its answer (`execute`, `query`: risk limits, positions, start-up) runs
the cycle for its own job itself when the engine is idle, under the same lock the engine thread
holds for its cycles (`_run_here`): an idle engine thread would only add two thread wake-ups to
the call. A busy engine queues the job behind the work already there, as before. A caller on an
event loop (order entry) never blocks: it submits with a `promise.Promise`, which the engine
thread sets.

When more work is queued, the write goes to a writer thread and the engine applies the next
batch meanwhile (SQLite runs without the interpreter lock, so the two overlap on two cores);
batches are still written one after another, in order. A small batch is written by the thread
that applied it when nothing else is queued, which saves a thread hop before its
acknowledgements. Before anything reads the venue for others (listeners, queries, snapshots),
the write in flight is awaited, so what they see is durable.

Listeners (feeds, metrics) are told once the engine has had nothing to do for `publish_idle`, or
`publish_max` after the oldest unpublished batch, with every batch since: their cost is mostly per
call (book depth, gauges), and running them while woken handlers want the interpreter to send their
acknowledgements, or while a client's next order comes in, delays those. The default `publish_idle`
is longer than a loopback client takes to send its next order after an ack, so such a client has
them run every `publish_max`, not after every order.

While the store cannot write, `storage_fault.StorageGuard` undoes the batch that failed and the
engine refuses commands until a probe write succeeds.
"""

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tradsys.daemon.storage_fault import StorageGuard
from tradsys.engine import Event, Rejected, Venue
from tradsys.engine.commands import BadCommand, apply

log = logging.getLogger("tradsys.core")

T = TypeVar("T")
INLINE_WRITE = 32
"""Batches up to this size are written on the engine thread when nothing else is queued; a larger
one is handed to the writer even then, as the next batch may well arrive while it is written."""
Batch = list[tuple[dict[str, Any], list[Event]]]
Listener = Callable[[Batch, Venue], None]


class Store(Protocol):
    """The store's write side (`store.Journal`): batches journaled in order, snapshots, probes."""

    def prepare(self, batch: Batch, venue: Venue) -> Any: ...
    def write(self, rows: Any) -> int: ...
    def discard(self) -> None: ...
    def probe(self) -> None: ...
    def snapshot(self, seq: int, venue: Venue) -> None: ...
    def snapshot_in_child(self, seq: int, venue: Venue) -> int: ...


class Actor(Protocol):
    """Something that trades from inside the daemon (the simulated market, live strategies): each
    tick it reads the venue and returns commands, which are journaled like any client's."""

    def step(self, now_ns: int, venue: Venue) -> list[dict[str, Any]]: ...


class Unavailable(Exception):
    """The engine is not taking commands (stopping, or the store refused the last batch)."""


class Overloaded(Unavailable):
    """The engine's queue holds `max_queued` commands already: this job is refused, not queued
    (RESOURCE_EXHAUSTED to a gRPC client), so that clients sending faster than the engine applies
    cannot grow the daemon's memory."""


class StorageFault(Unavailable):
    """The store cannot write (read-only database, disk full, I/O error): commands are refused
    until a probe write succeeds again; reads keep being served."""


Render = Callable[[list[dict[str, Any]], list["list[Event] | Exception"], Venue], Any]


@dataclass(slots=True)
class _Write:
    """An applied batch on its way to the store, with the answers its jobs get once it is durable."""

    batch: Batch
    rows: Any
    answers: list[tuple["_Job", Any, Exception | None]]
    now: int
    apply_seconds: float


@dataclass(slots=True)
class _Job:
    commands: list[dict[str, Any]] | None
    query: Callable[[Venue], Any] | None
    render: Render | None = None
    future: Future = field(default_factory=Future)


_WAKE = _Job(None, None)
"""Queued to wake the engine thread after a caller ran a cycle (`Core._run_here`): its batch
is published by the engine thread, which may be asleep until its next tick."""


class Core:
    def __init__(
        self,
        venue: Venue,
        store: Store,
        *,
        next_order_number: int = 1,
        last_seq: int = 0,
        actors: list[Actor] | None = None,
        clock: Callable[[], int] = time.time_ns,
        tick_seconds: float = 0.05,
        max_batch: int = 5000,
        max_queued: int = 50_000,
        snapshot_every: int = 100_000,
        restore: Callable[[], Venue] | None = None,
        probe_seconds: float = 1.0,
        publish_idle: float = 0.003,
        publish_max: float = 0.02,
    ) -> None:
        self.venue = venue
        self.store = store
        self.actors: list[Actor] = list(actors or ())
        self.listeners: list[Listener] = []
        self.last_seq = last_seq
        self.commands_total = 0
        self.batches_total = 0
        self.last_commit_ns = 0
        self.last_cycle_ns = 0
        """Wall-clock end of the engine thread's last cycle: it stops moving if the thread is stuck."""
        self.timings = (0.0, 0.0)
        """Seconds the last committed batch took to apply in the engine, and to make durable."""
        self._next_id = next_order_number
        self._clock = clock
        self._tick_ns = int(tick_seconds * 1e9)
        self._max_batch = max_batch
        self._snapshot_every = snapshot_every
        self._since_snapshot = 0
        self._snapshotter: int | None = None
        """The pid of the forked child writing a snapshot, until it is reaped."""
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._max_queued = max_queued
        self._queued = 0
        """Commands (a query counts as one) queued and not yet taken by the engine thread."""
        self._queued_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="tradsys-engine", daemon=True)
        self._stopping = False
        self._current: list[_Job] = []
        """The jobs of the cycle under way, failed rather than left hanging if the cycle breaks."""
        self.failed: BaseException | None = None
        self.storage = StorageGuard(store, restore, probe_seconds)
        """Why the store cannot write (`storage.fault`), while it cannot: commands are refused, queries served."""
        self._unpublished: Batch = []
        self._publish_idle_ns = int(publish_idle * 1e9)
        self._active_ns = 0
        """When a cycle last had jobs: listeners wait for `publish_idle` after it."""
        self._publish_max_ns = int(publish_max * 1e9)
        self._publish_by = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="tradsys-writer")
        self._in_flight: tuple[_Write, Future] | None = None
        self._lock = threading.Lock()
        """Held by whichever thread runs a cycle or publishes: the engine thread, or a caller (`_run_here`)."""
        self._claimed = False
        """The engine thread waits for the lock with jobs it has taken: callers queue behind them
        rather than overtake them (the lock is not fair)."""

    # -- client side ----------------------------------------------------------------------

    def submit(self, commands: list[dict[str, Any]], render: Render | None = None, future: Any = None) -> Any:
        """Queue commands; after the commit the future resolves to each command's events (or the
        BadCommand/Rejected that refused it unapplied), in order. With `render`, to what it makes of
        them: it runs on the engine thread, so it may read engine objects that later commands change.
        `future` is what gets resolved (a `promise.Promise` for a caller on an event loop); by
        default a new `concurrent.futures.Future`."""
        job = _Job(commands, None, render) if future is None else _Job(commands, None, render, future)
        self._enqueue(job)
        return job.future

    def execute(self, commands: list[dict[str, Any]], render: Render | None = None, timeout: float = 10.0) -> Any:
        """`submit`, and wait for the answer; run here if the engine is idle (see `_run_here`)."""
        return self._call(_Job(commands, None, render), timeout)

    def query(self, fn: Callable[[Venue], T], timeout: float = 10.0) -> T:
        """Run a read-only function on the engine, after everything queued before it is durable
        and published: a snapshot taken here lines up with the feeds' sequence numbers."""
        return self._call(_Job(None, fn), timeout)

    def _call(self, job: _Job, timeout: float) -> Any:
        if not self._run_here(job):
            self._enqueue(job)
        return job.future.result(timeout)

    def _run_here(self, job: _Job) -> bool:
        """Caller-runs: when the engine is idle (nothing queued, nothing being written), the
        caller's thread runs the cycle for its job itself, under the engine lock, and writes the
        batch inline: a blocked caller waking the engine thread, and the engine thread waking it
        back, would cost two thread wake-ups, which take longer than applying and writing one
        order. False if the engine is busy: then the job goes through the queue, behind the work
        already there."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if (self._claimed or self._stopping or self.failed is not None or self._in_flight is not None
                    or not self._queue.empty()):
                return False
            job.future.set_running_or_notify_cancel()
            self._current = [job]
            first = not self._unpublished
            try:
                self._cycle([job], max(self._clock(), self.venue.now), tick=False, inline=True)
            except BaseException as exc:
                self._crash(exc)
                return True
            self._current = []
            if first and self._unpublished:
                self._queue.put(_WAKE)  # the engine thread publishes this batch; it may be asleep until its next tick
            return True
        finally:
            self._lock.release()

    def _enqueue(self, job: _Job) -> None:
        if self._stopping or self.failed is not None:
            raise Unavailable("the engine is stopping" if self.failed is None else f"the engine stopped: {self.failed}")
        size = _size(job)
        with self._queued_lock:
            if self._queued + size > self._max_queued:
                raise Overloaded(f"the engine has {self._queued} commands queued (its limit is {self._max_queued}): "
                                 "try again shortly")
            self._queued += size
        self._queue.put(job)

    def _dequeued(self, job: _Job | None) -> None:
        if job is not None:
            with self._queued_lock:
                self._queued -= _size(job)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking commands, finish what is queued, snapshot, and end the thread."""
        self._stopping = True
        self._queue.put(None)
        self._thread.join(timeout)

    def pending(self) -> int:
        """Jobs queued for the engine thread and not yet taken."""
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self.failed is None

    # -- engine thread --------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = 0
        try:
            while True:
                now = self._clock()
                wait = max(0.0, (next_tick - now) / 1e9)
                if self._unpublished or self._in_flight is not None:
                    wait = min(wait, max(0.0, (self._publish_due() - now) / 1e9))
                jobs, stop = self._take(wait)
                self._claimed = True
                with self._lock:
                    self._claimed = False
                    self._current = jobs
                    if self.failed is not None:  # a caller's cycle failed (`_run_here`)
                        self._fail_pending(self.failed)
                        _fail(jobs, self.failed)
                        return
                    now = max(self._clock(), self.venue.now)
                    tick = now >= next_tick
                    if tick:
                        next_tick = now + self._tick_ns
                    self._cycle(jobs, now, tick)
                    if stop or now >= self._publish_due():
                        self._publish()
                    self.last_cycle_ns = self._clock()
                    if stop:
                        self._reap(block=True)
                        if self._since_snapshot:
                            self.store.snapshot(self.last_seq, self.venue)
                        break
        except BaseException as exc:
            self._crash(exc)
        finally:
            self._writer.shutdown(wait=False)

    def _crash(self, exc: BaseException) -> None:
        """The venue or the store failed: refuse work loudly, never hang clients."""
        self.failed = exc
        log.exception("engine.failed")
        self._fail_pending(exc)
        in_flight = [job for job, _, _ in self._in_flight[0].answers] if self._in_flight else []
        _fail(self._current + in_flight, exc)

    def _take(self, wait: float) -> tuple[list[_Job], bool]:
        jobs: list[_Job] = []
        try:
            job = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            return jobs, False
        count = 0
        while True:
            self._dequeued(job)
            if job is None:
                return jobs, True
            # a caller that gave up (a cancelled future) is not served; a taken job can no longer be cancelled
            if job is not _WAKE and job.future.set_running_or_notify_cancel():
                jobs.append(job)
                count += len(job.commands) if job.commands is not None else 1
            if count >= self._max_batch:
                return jobs, False
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return jobs, False

    def _cycle(self, jobs: list[_Job], now: int, tick: bool, inline: bool = False) -> None:
        if jobs:
            self._active_ns = now
        if self.storage.fault is not None and not self.storage.probe(now):
            self._refuse(jobs)
            return
        venue = self.venue
        started = time.perf_counter()
        batch: Batch = []
        results: list[tuple[_Job, list[list[Event] | Exception]]] = []
        for job in jobs:
            if job.commands is None:
                continue
            out: list[list[Event] | Exception] = []
            for cmd in job.commands:
                out.append(self._apply(cmd, now, batch))
            results.append((job, out))
        if tick:
            for actor in self.actors:
                for cmd in actor.step(now, venue):
                    self._apply(cmd, now, batch)
            expired = venue.advance(now)
            if expired:
                batch.append(({"op": "advance", "ts": now}, expired))
        answers = [self._answer(job, out, venue) for job, out in results]
        if batch:
            if self._publish_by == 0:
                self._publish_by = now + self._publish_max_ns
            write = _Write(batch, self.store.prepare(batch, venue), answers, now, time.perf_counter() - started)
            if not self._settle():
                self._void(write.answers)  # applied on top of the batch that failed: gone with it
                self._refuse([job for job in jobs if job.commands is None])
                return
            if inline or (len(batch) <= INLINE_WRITE and self._queue.empty()):
                # A few commands and nothing to apply meanwhile: write here, and spare their
                # acknowledgements a thread hop.
                try:
                    self._write(write)
                except Exception as exc:
                    self._write_failed(write, exc)
                    self._refuse([job for job in jobs if job.commands is None])
                    return
                self._committed(write)
            else:
                self._in_flight = (write, self._writer.submit(self._write, write))
        elif answers:
            # refusals are not answered ahead of earlier commands still being written
            if self._settle():
                _resolve(answers)
            else:
                self._void(answers)
        if any(job.query is not None for job in jobs):
            self._publish()
        for job in jobs:
            if job.query is not None:
                try:
                    job.future.set_result(job.query(venue))
                except Exception as exc:
                    job.future.set_exception(exc)
        if self._snapshotter is not None:
            self._reap(block=False)
        if self._since_snapshot >= self._snapshot_every and self._snapshotter is None and self._settle():
            try:
                self._snapshotter = self.store.snapshot_in_child(self.last_seq, venue)
                self._since_snapshot = 0
            except Exception as exc:  # only bounds the next recovery: try again later
                self._snapshot_failed(str(exc))

    def _answer(self, job: _Job, out: list[list[Event] | Exception], venue: Venue) -> tuple[_Job, Any, Exception | None]:
        """What a job's future resolves to, rendered now: later commands change the engine's objects."""
        if job.render is None:
            return job, out, None
        try:
            return job, job.render(job.commands or [], out, venue), None
        except Exception as exc:
            return job, None, exc

    def _write(self, write: _Write) -> None:
        """Make the batch durable, then answer its jobs (on the writer thread, or inline)."""
        started = time.perf_counter()
        self.last_seq = self.store.write(write.rows)
        self.timings = (write.apply_seconds, time.perf_counter() - started)
        self.commands_total += len(write.batch)
        self.batches_total += 1
        self.last_commit_ns = write.now
        _resolve(write.answers)

    def _settle(self) -> bool:
        """Wait for the write in flight; False if it failed (then the venue is back at its
        durable state and every command since is refused)."""
        if self._in_flight is None:
            return True
        write, future = self._in_flight
        self._in_flight = None
        try:
            future.result()
        except Exception as exc:
            self._write_failed(write, exc)
            return False
        self._committed(write)
        return True

    def _committed(self, write: _Write) -> None:
        self._unpublished += write.batch
        self._since_snapshot += len(write.batch)

    def _write_failed(self, write: _Write, exc: Exception) -> None:
        """The batch is applied in memory but not durable. Without a way back to the durable
        state the engine stops; with one, it goes back and refuses commands until a probe write
        succeeds."""
        self.store.discard()
        if not self.storage.can_undo:
            self._void(write.answers, Unavailable(f"not durable: {exc}"))
            raise exc
        self.storage.enter(self.venue, exc, write.now)
        self._void(write.answers)

    def _void(self, answers: list[tuple[_Job, Any, Exception | None]], error: Exception | None = None) -> None:
        error = error or StorageFault(f"not durable, nothing was done: {self.storage.fault}")
        for job, _, _ in answers:
            job.future.set_exception(error)

    def _reap(self, block: bool) -> None:
        """Collect the snapshot child once it has exited; a failed snapshot is tried again later."""
        if self._snapshotter is None:
            return
        pid, status = os.waitpid(self._snapshotter, 0 if block else os.WNOHANG)
        if pid == 0:
            return
        self._snapshotter = None
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            self._snapshot_failed(f"the snapshot process exited with {code}")

    def _snapshot_failed(self, error: str) -> None:
        log.warning("snapshot.failed", extra={"fields": {"error": error}})
        self._since_snapshot = self._snapshot_every // 2  # half an interval from now

    def _publish_due(self) -> int:
        """When listeners are told: `publish_idle` after the last cycle with jobs, or sooner at
        `publish_max` after the oldest unpublished batch."""
        due = self._active_ns + self._publish_idle_ns
        return min(due, self._publish_by) if self._publish_by else due

    def _publish(self) -> None:
        """Tell the listeners about every committed batch they have not seen, as one batch."""
        self._settle()
        self._publish_by = 0
        batch, self._unpublished = self._unpublished, []
        if not batch:
            return
        for listener in self.listeners:
            try:
                listener(batch, self.venue)
            except Exception:
                log.exception("listener.failed", extra={"fields": {"listener": getattr(listener, "__qualname__", "?")}})

    def _refuse(self, jobs: list[_Job]) -> None:
        """While the store cannot write: commands are refused, unapplied; queries are answered."""
        self._publish()
        for job in jobs:
            if job.commands is not None:
                job.future.set_exception(StorageFault(f"new orders are refused: {self.storage.fault}"))
            elif job.query is not None:
                try:
                    job.future.set_result(job.query(self.venue))
                except Exception as exc:
                    job.future.set_exception(exc)

    def _apply(self, cmd: dict[str, Any], now: int, batch: Batch) -> list[Event] | Exception:
        if cmd.get("op") == "new" and "id" not in cmd:
            cmd["id"] = str(self._next_id)
            self._next_id += 1
        cmd["ts"] = now
        try:
            events = apply(self.venue, cmd)
        except (BadCommand, Rejected) as exc:
            return exc
        batch.append((cmd, events))
        return events

    def _fail_pending(self, exc: BaseException) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            self._dequeued(job)
            if job is not None and job is not _WAKE:
                _fail([job], exc)


def _size(job: _Job) -> int:
    return len(job.commands) if job.commands is not None else (0 if job is _WAKE else 1)


def _fail(jobs: list[_Job], exc: BaseException) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(Unavailable(f"the engine stopped: {exc}"))


def _resolve(answers: list[tuple[_Job, Any, Exception | None]]) -> None:
    for job, value, error in answers:
        if error is None:
            job.future.set_result(value)
        else:
            job.future.set_exception(error)

