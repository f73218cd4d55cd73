"""The order history written behind the journal: reads wait for what was acknowledged, the backlog
is bounded, and recovery projects the journal rows the tables lack, exactly once.

The projector's transaction is gated (`stalled`) so the projection lags on purpose: no test
depends on how fast it would have caught up by itself.
"""

import sqlite3
import threading
from pathlib import Path

import pytest

from tradsys.daemon.store import Store, journal, projector
from tradsys.engine import Venue
from tradsys.engine.commands import apply

T0 = 1_767_600_000 * 1_000_000_000


def new(oid: str, side: str, price: str, *, account: str = "a1", ts: int = T0) -> dict:
    return {"op": "new", "id": oid, "account": account, "symbol": "BTC-USD", "side": side, "type": "limit",
            "qty": "1", "price": price, "ts": ts}


def write(store: Store, venue: Venue, *cmds: dict) -> int:
    """Apply and journal a batch as the engine does (`prepare`, then `write`): durable, acknowledged."""
    batch = [(cmd, apply(venue, cmd)) for cmd in cmds]
    return store.journal.write(store.journal.prepare(batch, venue))


def table_count(store: Store, table: str) -> int:
    """Rows in a table, read directly: no barrier."""
    return store.db.execute_sql(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def stalled(monkeypatch: pytest.MonkeyPatch):
    """Every batch goes to the projector (none is projected in its journal transaction), whose
    transactions wait until the test sets the returned event."""
    gate = threading.Event()
    real = projector.write
    monkeypatch.setattr(journal, "INLINE_ROWS", -1)

    def gated(connect, chunk, lock) -> None:  # type: ignore[no-untyped-def]
        gate.wait(30)
        real(connect, chunk, lock)

    monkeypatch.setattr(projector, "write", gated)
    yield gate
    gate.set()


def test_a_read_after_the_ack_sees_the_order(tmp_path: Path, stalled: threading.Event) -> None:
    store = Store(tmp_path / "t.db")
    venue = Venue()
    write(store, venue, new("1", "buy", "100"), new("2", "sell", "100", account="a2"))
    assert table_count(store, "orders") == 0, "the projection lags (its transaction is gated)"
    threading.Timer(0.05, stalled.set).start()  # after the reads below have started waiting
    order = store.history.get_order("1")
    assert order is not None and order["status"] == "filled"
    assert [o["id"] for o in store.history.list_orders()[0]] == ["2", "1"]
    assert len(store.history.list_fills()[0]) == 2
    store.close()


def test_a_read_that_the_projection_cannot_reach_fails_rather_than_miss_an_order(
        tmp_path: Path, stalled: threading.Event) -> None:
    store = Store(tmp_path / "t.db")
    write(store, Venue(), new("1", "buy", "100"))
    with pytest.raises(projector.ProjectionLag):
        store.journal.projector.barrier(timeout=0.01)
    stalled.set()
    store.close()


def test_the_backlog_is_bounded(tmp_path: Path, stalled: threading.Event) -> None:
    store = Store(tmp_path / "t.db")
    store.journal.projector._max_rows = 2
    venue = Venue()
    write(store, venue, new("1", "buy", "90"), new("2", "buy", "91"))
    done = threading.Event()

    def third() -> None:
        write(store, venue, new("3", "buy", "92"))
        done.set()

    thread = threading.Thread(target=third)
    thread.start()
    assert not done.wait(0.1), "the write waits while the backlog is full"
    assert store.journal.projector.backlog() == 2
    stalled.set()
    thread.join(10)
    assert done.is_set()
    assert [o["id"] for o in store.history.list_orders()[0]] == ["3", "2", "1"]
    store.close()


BATCHES = (
    (new("1", "buy", "100"), new("2", "buy", "99")),
    (new("3", "sell", "100", account="a2"), {"op": "cancel", "id": "2", "ts": T0}),
    (new("4", "sell", "98", account="a2"), new("5", "buy", "97"), new("1", "buy", "1")),
)


def tables(store: Store) -> tuple[list, list]:
    orders = store.db.execute_sql("SELECT * FROM orders ORDER BY id").fetchall()
    fills = store.db.execute_sql("SELECT * FROM fills ORDER BY id").fetchall()
    return orders, fills


def test_recovery_projects_what_the_tables_lack_exactly_once(tmp_path: Path, stalled: threading.Event) -> None:
    stalled.set()
    reference = Store(tmp_path / "reference.db")
    venue = Venue()
    for batch in BATCHES:
        reference.journal.commit([(cmd, apply(venue, dict(cmd))) for cmd in batch], venue)

    path = tmp_path / "t.db"
    crashed = Store(path)
    venue = Venue()
    write(crashed, venue, *[dict(cmd) for cmd in BATCHES[0]])
    crashed.journal.projector.barrier()  # the first batch is projected...
    stalled.clear()
    for batch in BATCHES[1:]:
        write(crashed, venue, *[dict(cmd) for cmd in batch])
    assert table_count(crashed, "orders") == 2  # ...the others acknowledged, not projected: the process dies

    store = Store(path)
    assert store.journal.projector.projected == 2
    recovered, last, _ = store.journal.recover(Venue)
    assert last == 7 and store.journal.projector.projected == 7
    assert tables(store) == tables(reference)
    assert len(tables(store)[1]) == 2 and sorted(recovered.orders) == ["4", "5"]
    again = Store(path)
    assert again.journal.recover(Venue)[1] == 7  # nothing left to project: nothing twice
    assert tables(again) == tables(reference)
    for s in (store, again, reference):
        s.close()


def test_a_small_batch_with_nothing_waiting_is_projected_with_its_journal_rows(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    write(store, Venue(), new("1", "buy", "100"))
    assert table_count(store, "orders") == 1 and not store.journal.projector.started
    assert store.db.execute_sql("SELECT seq FROM projection").fetchone()[0] == 1
    store.close()


def test_a_failed_projection_is_tried_again_and_reads_wait_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = projector.write, []

    def failing_once(connect, chunk, lock) -> None:  # type: ignore[no-untyped-def]
        calls.append(len(chunk))
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        real(connect, chunk, lock)

    monkeypatch.setattr(journal, "INLINE_ROWS", -1)
    monkeypatch.setattr(projector, "write", failing_once)
    monkeypatch.setattr(projector, "RETRY_SECONDS", 0.01)
    store = Store(tmp_path / "t.db")
    write(store, Venue(), new("1", "buy", "100"))
    assert store.history.get_order("1") is not None
    assert len(calls) >= 2 and store.journal.projector.failure is None
    store.close()
