"""What the engine does while the store cannot write (read-only database, disk full, I/O error).

A batch applied in memory but not made durable is undone: the venue is put back to the durable
state, in place, so everything holding it sees the undo. Commands are then refused, and queries
served, until a probe write succeeds; probes are spaced so that a full disk is not hammered.
"""

import logging
from collections.abc import Callable
from typing import Protocol

from tradsys.engine import Venue

log = logging.getLogger("tradsys.core")


class Probe(Protocol):
    def probe(self) -> None: ...


class StorageGuard:
    """The store's fault state, for the engine thread: `fault` says why it cannot write, while it
    cannot."""

    def __init__(self, store: Probe, restore: Callable[[], Venue] | None, probe_seconds: float) -> None:
        self._store = store
        self._restore = restore
        """The durable state as a fresh venue (the store's recovery), to undo a batch that could not be committed."""
        self._probe_ns = int(probe_seconds * 1e9)
        self._next_probe = 0
        self.fault: str | None = None
        self.faults_total = 0

    @property
    def can_undo(self) -> bool:
        """Whether a failed write can be undone; without a way back the engine must stop."""
        return self._restore is not None

    def enter(self, venue: Venue, exc: BaseException, now: int) -> None:
        """The batch is applied in `venue` but not durable: put it back to the durable state
        and refuse commands until a probe write succeeds."""
        assert self._restore is not None
        _replace_state(venue, self._restore())
        self.fault = _describe(exc)
        self.faults_total += 1
        self._next_probe = now + self._probe_ns
        log.error("store.fault", extra={"fields": {"reason": self.fault}})

    def probe(self, now: int) -> bool:
        """True once a probe write succeeds (the fault is cleared); probes at most every
        `probe_seconds`."""
        if now < self._next_probe:
            return False
        self._next_probe = now + self._probe_ns
        try:
            self._store.probe()
        except Exception:
            return False
        log.warning("store.recovered", extra={"fields": {"was": self.fault}})
        self.fault = None
        return True


def _describe(exc: BaseException) -> str:
    """Why the store refused a write, from the first error in the chain: a failed rollback
    (SQLite has already rolled back after SQLITE_FULL) must not hide the disk being full."""
    while exc.__context__ is not None and "rollback" in str(exc):
        exc = exc.__context__
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        return f"the database is read-only ({exc})"
    if "full" in text or "no space" in text or "too large" in text:
        return f"the disk is full ({exc})"
    return f"the database cannot be written ({exc})"


def _replace_state(venue: Venue, durable: Venue) -> None:
    """Make `venue` hold `durable`'s state, in place: the compiled engine lists its attributes in
    `__mypyc_attrs__`, plain Python in `__slots__`."""
    for name in getattr(Venue, "__mypyc_attrs__", None) or Venue.__slots__:
        if hasattr(durable, name):
            setattr(venue, name, getattr(durable, name))
