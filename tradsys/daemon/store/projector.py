"""The orders and fills tables, written behind the journal on a thread of their own.

A batch is acknowledged once its journal rows are durable; its projection rows (prepared on the
engine thread with the journal rows, `projection.project`) follow in a later transaction, with the
journal seq they reach (the `projection` table's high-water mark) in the same transaction. So the
tables are always the projection of the journal up to that mark, and recovery re-projects what lies
past it (`Journal.recover`).

Readers of the tables wait for the projection to reach the journal's last written seq (`barrier`):
everything acknowledged before a read started is in what it reads. The backlog is bounded in rows:
past `max_rows` waiting, `put` (the journal's writer) waits, which holds the engine back and fills
its bounded queue, so clients are slowed to the projection's rate instead of growing memory, and
a read waits at most for the backlog to be written. A small batch with nothing waiting before it
skips the projector: the journal's writer projects it in the journal transaction (`Journal.write`).

The projection's commits skip the fsync (synchronous=NORMAL): the journal is the truth, and the
next journal commit, or a checkpoint, makes them durable with everything before them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable

from tradsys.daemon.store.projection import Rows

log = logging.getLogger("tradsys.store")

MAX_ROWS = 20_000
"""Projection rows (orders and fills) waiting at most; `put` waits past it."""
CHUNK_ROWS = 2_000
"""Rows per projection transaction at most, so that a journal append waiting for the write lock
waits for one short transaction, not the whole backlog."""
RETRY_SECONDS = 0.5
BARRIER_SECONDS = 30.0
"""How long a read waits for the projection before it fails rather than miss an acknowledged order."""


class ProjectionLag(Exception):
    """The projection did not reach the seq a read must see in time (the database cannot be written)."""


class Projector:
    """Owns the projection's backlog, its thread and its high-water mark (`projected`).

    `connect` gives the connection to write through (the journal's); `write_lock` is held around
    every write transaction on the database (the journal's too): SQLite has one writer at a time,
    and a writer waiting in SQLite's busy handler sleeps for milliseconds."""

    def __init__(self, connect: Callable[[], Any], write_lock: threading.Lock, projected: int, *,
                 max_rows: int = MAX_ROWS) -> None:
        self.write_lock = write_lock
        self.projected = projected
        """The last journal seq whose projection is in the tables (committed)."""
        self.written = projected
        """The last journal seq made durable: what a read must see."""
        self.failure: str | None = None
        """Why the last projection transaction failed, until one succeeds."""
        self._connect = connect
        self._max_rows = max_rows
        self._queue: deque[Rows] = deque()
        self._rows = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.started = False
        """Whether the projector has taken a batch: from then on it owns the tables' tail."""

    def backlog(self) -> int:
        """Projection rows waiting to be written."""
        return self._rows

    def put(self, rows: Rows) -> None:
        """Queue a durable batch's projection; waits while the backlog is full."""
        size = projection_rows(rows)
        with self._cond:
            self.started = True
            if self._thread is None:
                self._start()
            while self._rows and self._rows + size > self._max_rows:
                self._cond.wait()
            self.written = rows.seq
            if size:
                self._queue.append(rows)
                self._rows += size
            elif not self._queue:
                self.projected = rows.seq  # nothing to project, nothing before it waiting
            self._cond.notify_all()

    def idle(self) -> bool:
        """Nothing is waiting to be projected."""
        return not self._queue

    def projected_inline(self, seq: int) -> None:
        """The journal's writer projected everything up to `seq` itself (with nothing waiting)."""
        with self._cond:
            self.written = self.projected = seq
            self._cond.notify_all()

    def barrier(self, seq: int | None = None, timeout: float = BARRIER_SECONDS) -> None:
        """Wait until the tables hold the projection up to `seq` (default: the journal's last
        written seq); ProjectionLag if that takes longer than `timeout`."""
        if self.projected >= (self.written if seq is None else seq):
            return
        with self._cond:
            target = self.written if seq is None else seq
            if not self._cond.wait_for(lambda: self.projected >= target, timeout):
                raise ProjectionLag(f"the order history is behind the journal ({self.projected} < {target}): "
                                    f"{self.failure or 'still writing'}")

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread (the next `put` starts another)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._closing = False
            if thread is not None and not thread.is_alive():
                self._thread = None
                if self._queue:  # put while the thread was ending
                    self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tradsys-projector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                chunk, count = [], 0
                for rows in self._queue:
                    if chunk and count + projection_rows(rows) > CHUNK_ROWS:
                        break
                    chunk.append(rows)
                    count += projection_rows(rows)
            try:
                write(self._connect, chunk, self.write_lock)
            except Exception as exc:
                with self._cond:
                    self.failure = str(exc)
                    log.error("projection.failed", extra={"fields": {"error": self.failure}})
                    self._cond.wait(RETRY_SECONDS)
                continue
            with self._cond:
                for _ in chunk:
                    self._queue.popleft()
                self._rows -= count
                self.failure = None
                self.projected = chunk[-1].seq
                if not self._queue:
                    self.projected = max(self.projected, self.written)
                self._cond.notify_all()


def write(connect: Callable[[], Any], chunk: list[Rows], lock: threading.Lock) -> None:
    """The projections of `chunk` (in order) and its last seq as the high-water mark, in one
    transaction without the fsync on the connection `connect` gives, holding the database's
    write `lock`."""
    with lock:
        conn = connect()
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            for rows in chunk:
                rows.write_tables(conn)
            conn.execute("UPDATE projection SET seq = ?", (chunk[-1].seq,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def projection_rows(rows: Rows) -> int:
    """Order and fill rows in a prepared batch."""
    return len(rows.created) + len(rows.updated) + len(rows.rejected) + len(rows.fills)
