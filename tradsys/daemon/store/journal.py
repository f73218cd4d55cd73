"""The command journal: the truth from which the venue is rebuilt.

Every command that reached the engine, in order, including the ones it rejected (they still move
rate-limit counters and the clock). `recover` loads the newest snapshot and replays the journal
after it through `commands.apply`, which reproduces the venue exactly. The orders and fills
tables are projections of the events, written behind the journal (`projector`); recovery
re-projects the journal rows past the projection's high-water mark.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import peewee as pw

from tradsys.daemon.store import snapshots
from tradsys.daemon.store.codec import loads
from tradsys.daemon.store.projection import Rows, project
from tradsys.daemon.store.projector import Projector, projection_rows, write as write_tables
from tradsys.engine.commands import apply
from tradsys.engine.events import Event
from tradsys.engine.venue import Venue

CHUNK = 2_000
"""Journal rows read per statement, so that no statement stays open between items; also journal
rows re-projected per transaction in recovery."""

INLINE_ROWS = 32
"""Projection rows a batch may have and still be projected in its journal transaction (`write`)."""

log = logging.getLogger("tradsys.store")


class CorruptJournal(Exception):
    """A journal row that cannot be read back: the daemon will not guess what it did."""


class Journal:
    """Appends batches (the engine thread, one writer at a time), takes snapshots, recovers.

    `fsync` also makes each snapshot file durable before older ones are removed. A snapshot is
    only taken of a state the projection has reached, so that recovery, replaying from it, can
    re-project whatever lags."""

    def __init__(self, db: pw.SqliteDatabase, path: Path, fsync: bool, connect: Callable[[], Any]) -> None:
        """`connect` opens the connection the journal and the projector write through."""
        self.db = db
        self.path = path
        self.snapshot_dir = path.with_name(path.name + ".snapshots")
        self._fsync = fsync
        self._sync = f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}"
        self._seq: int = db.execute_sql("SELECT max(seq) FROM journal").fetchone()[0] or 0
        self._connect = connect
        self._writer: Any = None
        """The one connection every journal and projection write uses (one at a time, under
        `_lock`, from whichever thread): with two, each would find its page cache stale after
        every write of the other."""
        self._lock = threading.Lock()
        self.projector = Projector(self._connection, self._lock, db.execute_sql("SELECT seq FROM projection").fetchone()[0])
        self._prepared = self._seq
        """The seq of the last row `prepare` handed out; `_seq` is the last one written."""

    def _connection(self) -> Any:
        if self._writer is None:
            self._writer = self._connect()
        return self._writer

    @property
    def last_seq(self) -> int:
        """The last journal seq this store wrote or found at open."""
        return self._seq

    # -- appending (engine thread only) --------------------------------------------------------

    def commit(self, batch: Sequence[tuple[dict, list[Event]]], venue: Venue) -> int:
        """Journal a batch of applied commands (one durable transaction) and wait for their
        projection; returns the seq of the batch's last journal row."""
        rows = self.prepare(batch, venue)
        try:
            seq = self.write(rows)
        except BaseException:
            self.discard()
            raise
        self.projector.barrier(seq)
        return seq

    def prepare(self, batch: Sequence[tuple[dict, list[Event]]], venue: Venue) -> Rows:
        """A batch's journal rows and projections, read from the engine's objects as they are
        now: call it before the engine applies anything else. `write` then makes them durable,
        on any thread, in the order they were prepared."""
        rows = project(batch, venue, self._prepared)
        self._prepared = rows.seq
        return rows

    def write(self, rows: Rows) -> int:
        """Make prepared journal rows durable in one transaction and queue their projection
        (which waits while the projector's backlog is full); returns the seq of their last journal
        row. After a failure, `discard` whatever was prepared but not written.

        A batch of at most `INLINE_ROWS` projection rows with none waiting before it is projected
        in its own journal transaction instead: for a lone order, waking the projector thread
        (which then wants the interpreter while the acknowledgement is sent) costs more than
        writing its row."""
        if not rows.journal:
            return self._seq
        # The sqlite3 connection directly: peewee's transaction bookkeeping costs as much as the
        # inserts of a one-order batch.
        with self._lock:
            inline = projection_rows(rows) <= INLINE_ROWS and self.projector.idle()
            conn = self._connection()
            conn.execute(self._sync)  # the projector writes through this connection without the fsync
            try:
                conn.execute("BEGIN IMMEDIATE")
                rows.write_journal(conn)
                if inline:
                    rows.write_tables(conn)
                    conn.execute("UPDATE projection SET seq = ?", (rows.seq,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        self._seq = rows.seq
        if inline:
            self.projector.projected_inline(rows.seq)
        else:
            self.projector.put(rows._replace(journal=[]))
        return rows.seq

    def discard(self) -> None:
        """Forget rows prepared but not written: the next `prepare` follows the last write."""
        self._prepared = self._seq

    def probe(self) -> None:
        """A tiny durable write (the header's user_version) through the connection the journal
        writes with: raises while the database cannot be written (read-only, disk full), so the
        engine knows when to take orders again. A failed probe closes that connection, and the
        next write opens it anew: SQLite opens a file it may not write read-only, and such a
        connection would stay read-only once the file is writable again."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                conn.execute(f"PRAGMA user_version = {(version + 1) % 1_000_000}")
                conn.execute("COMMIT")
            except BaseException:
                self._writer = None
                conn.close()
                raise

    # -- snapshots -------------------------------------------------------------------------------

    def snapshot(self, seq: int, venue: Venue) -> None:
        """Store the pickled venue as the state after journal row `seq`; older snapshots go."""
        self._check_snapshot_seq(seq)
        snapshots.write(self.snapshot_dir, seq, venue, self._fsync)

    def snapshot_in_child(self, seq: int, venue: Venue) -> int:
        """`snapshot` from a forked child (`snapshots.write_in_child`); returns its pid."""
        self._check_snapshot_seq(seq)
        return snapshots.write_in_child(self.snapshot_dir, seq, venue, self._fsync)

    def _check_snapshot_seq(self, seq: int) -> None:
        if seq > self._seq:
            raise ValueError(f"snapshot seq {seq} is past the journal's last seq {self._seq}")
        self.projector.barrier(seq)

    def snapshots(self) -> list[tuple[int, Path]]:
        """(seq, file) of this store's snapshots, newest first."""
        return snapshots.files(self.snapshot_dir)

    # -- recovery --------------------------------------------------------------------------------

    def recover(self, make_venue: Callable[[], Venue]) -> tuple[Venue, int, int]:
        """(venue, last seq, commands replayed): the newest snapshot (or `make_venue()`) plus
        every journal row after it, replayed through `commands.apply`.

        Before the projector has run (at start-up), the journal rows past the projection's mark
        (acknowledged, then the process died) are projected as they are replayed, so the tables
        hold every journal row exactly once; later (a storage fault's undo) the projector owns them."""
        projected = self.projector.projected
        reproject = not self.projector.started and projected < self._seq
        venue, last = snapshots.newest(self.snapshot_dir, self._seq)
        if reproject and last > projected:
            # The mark's commit was lost with the power, not the snapshot's fsync: start over.
            log.warning("snapshot at seq %s is past the projection (%s); replaying the whole journal", last, projected)
            venue, last = None, 0
        if venue is None:
            venue = make_venue()
        replayed = 0
        lagging: list[tuple[dict, list[Event]]] = []
        for entry in self.entries(after_seq=last):
            try:
                events = apply(venue, entry["command"])
            except Exception:
                # The live engine thread met the same exception on the same state and journaled
                # the command anyway (e.g. `halt` of an unknown symbol after moving the clock):
                # replaying it reproduces whatever it changed before raising.
                events = []
            last = entry["seq"]
            replayed += 1
            if reproject and last > projected:
                lagging.append((entry["command"], events))
                if len(lagging) >= CHUNK:
                    self._reproject(lagging, venue, last)
        if lagging:
            self._reproject(lagging, venue, last)
        return venue, last, replayed

    def _reproject(self, lagging: list[tuple[dict, list[Event]]], venue: Venue, seq: int) -> None:
        """Project journal rows up to `seq` that the tables lack, as one batch: the tables end as
        they would after each row's own batch (every order's row holds its latest state)."""
        rows = project(lagging, venue, seq - len(lagging))
        write_tables(self._connection, [rows], self._lock)
        self.projector.projected = self.projector.written = seq
        lagging.clear()

    def close(self) -> None:
        """Finish the projection's backlog, end its thread and close the writing connection (the
        next write opens another)."""
        self.projector.close()
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def next_order_number(self) -> int:
        """1 + the largest all-digit order id ever stored (accepted or rejected), else 1: where
        the engine's order ids resume."""
        row = self.db.execute_sql(
            "SELECT max(CAST(id AS INTEGER)) FROM orders WHERE id <> '' AND id NOT GLOB '*[^0-9]*'"
        ).fetchone()
        return (row[0] or 0) + 1

    def entries(self, after_seq: int = 0) -> Iterator[dict]:
        """Journal rows after `after_seq`, oldest first: {seq, ts, op, command (decoded)}; any
        thread. Read in chunks, so no statement stays open between items."""
        while True:
            rows = self.db.execute_sql(
                "SELECT seq, ts, op, command FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, CHUNK),
            ).fetchall()
            for seq, ts, op, command in rows:
                try:
                    decoded = loads(command)
                except (TypeError, ValueError) as exc:
                    raise CorruptJournal(
                        f"{self.path}: journal row {seq} ({op}) is corrupt ({exc}); refusing to start rather than "
                        f"drop an acknowledged command. Restore the database from a backup, or inspect it with "
                        f"`sqlite3 {self.path} \"SELECT * FROM journal WHERE seq >= {seq}\"`"
                    ) from None
                if not isinstance(decoded, dict):
                    raise CorruptJournal(f"{self.path}: journal row {seq} ({op}) is not a command object")
                yield {"seq": seq, "ts": ts, "op": op, "command": decoded}
            if len(rows) < CHUNK:
                return
            after_seq = rows[-1][0]

