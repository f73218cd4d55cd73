"""Durable state for the daemon, in one SQLite file: the command journal with its venue snapshots
(`journal`), order and fill history (`history`), and risk limits, strategies and alerts
(`settings`), all written and read through one JSON codec (`codec`)."""

from tradsys.daemon.store.database import Store
from tradsys.daemon.store.history import History
from tradsys.daemon.store.journal import CorruptJournal, Journal
from tradsys.daemon.store.settings import Settings
from tradsys.daemon.store.tables import STATUSES

__all__ = ["STATUSES", "CorruptJournal", "History", "Journal", "Settings", "Store"]
