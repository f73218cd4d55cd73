"""Venue snapshots: pickle files beside the database (`NAME.snapshots/SEQ.pickle`), not rows, so
that a forked child can write them (a child must not use the parent's SQLite). A snapshot only
bounds recovery time: the journal alone reproduces the venue."""

from __future__ import annotations

import gc
import logging
import os
import pickle
import traceback
from pathlib import Path

from tradsys.engine.venue import Venue

log = logging.getLogger("tradsys.store")

SUFFIX = ".pickle"


def write(directory: Path, seq: int, venue: Venue, fsync: bool) -> None:
    """The venue pickled to `directory/SEQ.pickle`, written whole under a temporary name and then
    renamed, so a snapshot file is complete or absent; older snapshot files are removed."""
    directory.mkdir(exist_ok=True)
    final = directory / f"{seq:020d}{SUFFIX}"
    tmp = directory / f".{seq:020d}.{os.getpid()}.tmp"
    with open(tmp, "wb") as out:
        pickle.dump(venue, out, protocol=5)
        if fsync:
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, final)
    if fsync:
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
    for older, path in files(directory):
        if older < seq:
            path.unlink(missing_ok=True)


def write_in_child(directory: Path, seq: int, venue: Venue, fsync: bool) -> int:
    """`write` from a forked child, whose copy-on-write image of the venue stays as it was at the
    fork: the engine goes on at once instead of pausing for as long as pickling a large venue
    takes. Returns the child's pid; the child exits 0 once the snapshot is in place."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        gc.disable()  # a collection would touch, and so copy, every page of the parent's heap
        write(directory, seq, venue, fsync)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def files(directory: Path) -> list[tuple[int, Path]]:
    """(seq, file) of the snapshots in `directory`, newest first."""
    found = [(int(f.stem), f) for f in directory.glob("*" + SUFFIX) if f.stem.isdigit()]
    return sorted(found, reverse=True)


def newest(directory: Path, last_seq: int) -> tuple[Venue | None, int]:
    """The newest snapshot that loads and is not past the journal's `last_seq`, and its seq;
    (None, 0) when there is none, and the whole journal must be replayed."""
    for stale in directory.glob(".*.tmp"):
        stale.unlink(missing_ok=True)  # a child killed while writing
    for seq, path in files(directory):
        if seq > last_seq:
            # The journal lost rows the snapshot includes (synchronous=NORMAL and a power
            # loss): that history is gone, and new rows will reuse its seqs.
            log.warning("snapshot at seq %s is past the journal's end (%s); removing it", seq, last_seq)
            path.unlink(missing_ok=True)
            continue
        try:
            return pickle.loads(path.read_bytes()), seq
        except Exception:
            # e.g. the engine's classes changed since the snapshot was taken: the journal is
            # complete, so replaying all of it gives the same venue, only slower.
            log.warning("snapshot at seq %s does not load; replaying the whole journal", seq, exc_info=True)
            break
    return None, 0
