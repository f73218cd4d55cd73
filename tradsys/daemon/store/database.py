"""The daemon's SQLite file, opened once and shared by the journal and the read repositories.

SQLite through peewee, in WAL mode with `synchronous=FULL`: when a journal write returns, the
batch is on disk. One writer thread (the engine's) appends to the journal and snapshots, the
projector thread writes the order history behind it; any number of reader threads query the
history and settings, each on its own connection (peewee keeps one per thread), and WAL lets them
read while the writers write.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import peewee as pw

from tradsys.daemon.store.history import History
from tradsys.daemon.store.journal import Journal
from tradsys.daemon.store.settings import Settings
from tradsys.daemon.store.tables import bind

BUSY_TIMEOUT_MS = 10_000
PRAGMAS = (
    ("journal_mode", "wal"),
    ("foreign_keys", 0),
    ("busy_timeout", BUSY_TIMEOUT_MS),
    ("cache_size", -16_000),  # KiB, per connection: every reader thread has one, and it stays allocated
    ("temp_store", "memory"),
)


class Store:
    """The database: its `journal` (the engine's), `history` (orders and fills) and `settings`
    (risk limits, strategies, alerts). See the module docstring for the thread model."""

    def __init__(self, path: Path | str, *, wal_autocheckpoint: int = 1000, fsync: bool = True) -> None:
        """`fsync=False` keeps commits durable against a killed process (the WAL is written before
        `commit` returns) but not against power loss: SQLite's synchronous=NORMAL."""
        self.path = Path(path)
        self._pragmas = PRAGMAS + (("wal_autocheckpoint", wal_autocheckpoint), ("synchronous", "full" if fsync else "normal"))
        self.db = pw.SqliteDatabase(
            str(self.path),
            pragmas=self._pragmas,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
        models = bind(self.db)
        self.db.connect(reuse_if_open=True)
        mode = self.db.execute_sql("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: could not switch to WAL (journal_mode={mode})")
        with self.db.atomic("IMMEDIATE"):
            self.db.create_tables(list(models.values()), safe=True)
            self.db.execute_sql("DROP TABLE IF EXISTS snapshots")  # where snapshots were kept before the files
            # A database without a mark was projected in each batch's own transaction: all of it.
            self.db.execute_sql("INSERT INTO projection (seq) SELECT coalesce(max(seq), 0) FROM journal "
                                "WHERE NOT EXISTS (SELECT 1 FROM projection)")
        self.journal = Journal(self.db, self.path, fsync, self._connect_writer)
        self.history = History(self.db, self.journal.projector.barrier)
        self.settings = Settings(models)

    def _connect_writer(self) -> sqlite3.Connection:
        """The journal's own connection, which it shares with the projector thread (one at a time)."""
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        for key, value in self._pragmas:
            conn.execute(f"PRAGMA {key} = {value}")
        return conn

    def close(self) -> None:
        """Finish the projection, then close this thread's connection (other threads' connections
        close with their threads)."""
        self.journal.close()
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
