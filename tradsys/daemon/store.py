"""Durable state for the daemon: a command journal, order and fill history, venue snapshots.

SQLite through peewee, in WAL mode with `synchronous=FULL`: when `commit` returns, the batch is
on disk. One writer thread (the engine thread) calls `commit` and `snapshot`; any number of
reader threads call the query methods, each on its own connection (peewee keeps one per
thread), and WAL lets them read while the writer writes.

The journal is the truth: every command that reached the engine, in order, including the ones
it rejected (they still move rate-limit counters and the clock). `recover` loads the newest
snapshot and replays the journal after it through `commands.apply`, which reproduces the venue
exactly. `orders` and `fills` are projections of the events, kept for queries. Snapshots are
pickle files beside the database (`NAME.snapshots/`), not rows: a forked child writes them
(`snapshot_in_child`), and a child must not use the parent's SQLite.

Prices, quantities and fees are stored as exact decimal TEXT ("100.01", "0.5").
"""

from __future__ import annotations

import gc
import heapq
import json
import logging
import os
import pickle
import traceback
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import orjson
import peewee as pw
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

from tradsys.daemon.records import CASH, ORDER_FIELDS, order_row, units
from tradsys.engine.commands import apply, parse_ts
from tradsys.engine.enums import OrderStatus
from tradsys.engine.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from tradsys.engine.order import Order
from tradsys.engine.venue import Venue

log = logging.getLogger("tradsys.store")

BUSY_TIMEOUT_MS = 10_000
PRAGMAS = (
    ("journal_mode", "wal"),
    ("foreign_keys", 0),
    ("busy_timeout", BUSY_TIMEOUT_MS),
    ("cache_size", -16_000),  # KiB, per connection: every reader thread has one, and it stays allocated
    ("temp_store", "memory"),
)
STATUSES = tuple(s.value for s in OrderStatus)
JOURNAL_CHUNK = 2_000


# -- models --------------------------------------------------------------------------------
# Declared unbound; each Store binds its own subclasses to its own database (`Store.models`),
# so that several stores (tests, tools) can live in one process.


class JournalRow(pw.Model):
    seq = pw.AutoField()
    ts = pw.BigIntegerField(null=True)
    """The command's engine time (ns), when it has a valid one."""
    op = pw.TextField()
    command = pw.TextField()

    class Meta:
        table_name = "journal"


class OrderRow(pw.Model):
    id = pw.TextField(primary_key=True)
    client_id = pw.TextField(null=True)
    account = pw.TextField()
    symbol = pw.TextField()
    side = pw.TextField(null=True)
    type = pw.TextField(null=True)
    tif = pw.TextField(null=True)
    price = pw.TextField(null=True)
    stop_price = pw.TextField(null=True)
    qty = pw.TextField(null=True)
    filled_qty = pw.TextField()
    open_qty = pw.TextField()
    avg_price = pw.TextField(null=True)
    status = pw.TextField()
    post_only = pw.BooleanField(default=False)
    reduce_only = pw.BooleanField(default=False)
    reason = pw.TextField(null=True)
    expire_ns = pw.BigIntegerField(null=True)
    created_ns = pw.BigIntegerField()
    updated_ns = pw.BigIntegerField()

    class Meta:
        table_name = "orders"
        # The trailing id makes every index serve keyset paging on (created_ns, id) without a sort:
        # orders.id is TEXT, so it is not the rowid that SQLite appends to each index anyway.
        indexes = (
            (("account", "status", "created_ns", "id"), False),
            (("symbol", "created_ns", "id"), False),
            (("status", "created_ns", "id"), False),
            (("created_ns", "id"), False),
        )


class FillRow(pw.Model):
    id = pw.AutoField()
    trade_id = pw.BigIntegerField()
    order_id = pw.TextField()
    account = pw.TextField()
    symbol = pw.TextField()
    side = pw.TextField()
    price = pw.TextField()
    qty = pw.TextField()
    fee = pw.TextField()
    fee_currency = pw.TextField()
    liquidity = pw.TextField()
    ts = pw.BigIntegerField()

    class Meta:
        table_name = "fills"
        # id is the rowid, which SQLite appends to every index: (account, ts) is (account, ts, id).
        indexes = (
            (("account", "ts"), False),
            (("order_id", "ts"), False),
            (("symbol", "ts"), False),
            (("ts",), False),
        )


class RiskLimitRow(pw.Model):
    account = pw.TextField(default="")
    """'' = every account."""
    symbol = pw.TextField(default="")
    """'' = every symbol."""
    key = pw.TextField()
    value = pw.TextField(null=True)
    """Decimal text; NULL = no limit."""
    updated_ns = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "risk_limits"
        primary_key = pw.CompositeKey("account", "symbol", "key")


class StrategyRow(pw.Model):
    id = pw.TextField(primary_key=True)
    kind = pw.TextField()
    params = pw.TextField(default="{}")
    account = pw.TextField(null=True)
    state = pw.TextField()
    created_ns = pw.BigIntegerField(default=0)
    updated_ns = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "strategies"
        indexes = ((("account",), False),)


class AlertRow(pw.Model):
    id = pw.TextField(primary_key=True)
    rule = pw.TextField()
    severity = pw.TextField()
    state = pw.TextField()
    labels = pw.TextField(default="{}")
    summary = pw.TextField(default="")
    started_ns = pw.BigIntegerField()
    resolved_ns = pw.BigIntegerField(null=True)
    acked = pw.BooleanField(default=False)

    class Meta:
        table_name = "alerts"
        indexes = ((("state", "started_ns"), False),)


MODELS: tuple[type[pw.Model], ...] = (JournalRow, OrderRow, FillRow, RiskLimitRow, StrategyRow, AlertRow)

ORDER_COLUMNS = tuple(OrderRow._meta.sorted_field_names)
assert ORDER_COLUMNS == ORDER_FIELDS, "records.order_row builds rows in the table's column order"
FILL_COLUMNS = tuple(FillRow._meta.sorted_field_names)
_ORDER_COLS = ", ".join(ORDER_COLUMNS)
_FILL_COLS = ", ".join(FILL_COLUMNS)
_ORDER_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in ORDER_COLUMNS if c != "id")


class Insert:
    """An INSERT that takes many rows per statement.

    sqlite3 releases the interpreter around every statement step and must take it back after;
    with `executemany` that is once per row, and on the writer thread, while the engine thread
    is busy, each retake may wait for a switch interval. Here a statement carries up to `CHUNK`
    rows (256 streamed a little faster than 64); row counts are split into powers of two, so a
    few statements serve all.
    """

    CHUNK = 256

    def __init__(self, head: str, width: int, tail: str = "") -> None:
        self.head, self.tail = head, tail
        self.row = "(" + ", ".join("?" * width) + ")"
        self._sql: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        found = self._sql.get(rows)
        if found is None:
            found = self._sql[rows] = f"{self.head} VALUES {', '.join([self.row] * rows)} {self.tail}".rstrip()
        return found

    def run(self, conn: Any, rows: list[tuple]) -> None:
        start = 0
        while start < len(rows):
            n = 1 << (min(len(rows) - start, self.CHUNK).bit_length() - 1)
            conn.execute(self.sql(n), list(chain.from_iterable(rows[start:start + n])))
            start += n


INSERT_JOURNAL = Insert("INSERT INTO journal (seq, ts, op, command)", 4)
_ORDER_INSERT = f"INSERT INTO orders ({_ORDER_COLS})"
INSERT_ORDERS = Insert(_ORDER_INSERT, len(ORDER_COLUMNS), f"ON CONFLICT (id) DO UPDATE SET {_ORDER_UPDATE}")
MUTABLE_COLUMNS = ("price", "stop_price", "qty", "filled_qty", "open_qty", "avg_price", "status", "reason", "updated_ns")
"""What can change once an order is accepted. Updating only these leaves the symbol and time
indexes alone: SQLite rewrites an index entry when any of its columns is in the SET list."""
UPDATE_ORDERS = Insert(
    _ORDER_INSERT, len(ORDER_COLUMNS),
    f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in MUTABLE_COLUMNS)}",
)
INSERT_REJECTED = Insert(INSERT_ORDERS.head, len(ORDER_COLUMNS), INSERT_ORDERS.tail + " WHERE orders.status = 'rejected'")
"""A rejected `new` never overwrites an order that was accepted under the same id (a duplicate
id, or a malformed command reusing one); it may replace an earlier rejection."""
INSERT_FILLS = Insert(f"INSERT INTO fills ({', '.join(FILL_COLUMNS[1:])})", len(FILL_COLUMNS) - 1)


# -- decimal text from integer units -------------------------------------------------------




def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)  # exact; the engine reads decimal strings and Decimals alike
    raise TypeError(f"cannot journal a {type(value).__name__}: {value!r}")


if c_make_encoder is not None:
    # json.dumps builds a new C encoder on every call, which is half its cost for a command.
    _encode = c_make_encoder(None, _json_default, encode_basestring, None, ":", ",", False, False, True)

    def _json_dumps(value: object) -> str:
        return "".join(_encode(value, 0))
else:  # pragma: no cover - CPython always has the C encoder
    _json_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default).encode


def _dumps(value: object) -> str:
    """Compact JSON; Decimals as their exact decimal string.

    orjson writes a command in a fifth of the stdlib encoder's time (which was a tenth of the
    engine thread's work in order entry), and the same text, except that it writes NaN and the
    infinities as null and refuses integers beyond 64 bits: any output with a null, or a refusal,
    is written by the stdlib encoder instead.
    """
    try:
        out = orjson.dumps(value, default=_json_default)
    except orjson.JSONEncodeError:
        return _json_dumps(value)
    if b"null" in out:
        return _json_dumps(value)
    return out.decode()


def _edge_text(value: object) -> str | None:
    """A command field as stored for a rejected order: as given, Decimals as decimal text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, default=_json_default)


def _cmd_ts(cmd: dict) -> int | None:
    ts = cmd.get("ts")
    if type(ts) is int and ts >= 0:
        return ts
    try:
        return parse_ts(ts) if ts is not None else None
    except ValueError:
        return None


class CorruptJournal(Exception):
    """A journal row that cannot be read back: the daemon will not guess what it did."""


class Rows(NamedTuple):
    """A prepared batch: journal rows up to `seq`, and the projections of its events."""

    seq: int
    journal: list[tuple]
    created: list[tuple]
    updated: list[tuple]
    rejected: list[tuple]
    fills: list[tuple]


SNAPSHOT_SUFFIX = ".pickle"


def write_snapshot(directory: Path, seq: int, venue: Venue, fsync: bool) -> None:
    """The venue pickled to `directory/SEQ.pickle`, written whole under a temporary name and then
    renamed, so a snapshot file is complete or absent; older snapshot files are removed."""
    directory.mkdir(exist_ok=True)
    final = directory / f"{seq:020d}{SNAPSHOT_SUFFIX}"
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
    for older, path in snapshot_files(directory):
        if older < seq:
            path.unlink(missing_ok=True)


def snapshot_files(directory: Path) -> list[tuple[int, Path]]:
    """(seq, file) of the snapshots in `directory`, newest first."""
    found = [(int(f.stem), f) for f in directory.glob("*" + SNAPSHOT_SUFFIX) if f.stem.isdigit()]
    return sorted(found, reverse=True)


class Store:
    """The daemon's SQLite database. See the module docstring for the thread model."""

    def __init__(self, path: Path | str, *, wal_autocheckpoint: int = 1000, fsync: bool = True) -> None:
        """`fsync=False` keeps commits durable against a killed process (the WAL is written before
        `commit` returns) but not against power loss: SQLite's synchronous=NORMAL."""
        self.path = Path(path)
        self.snapshot_dir = self.path.with_name(self.path.name + ".snapshots")
        self._fsync = fsync
        self.db = pw.SqliteDatabase(
            str(self.path),
            pragmas=PRAGMAS + (("wal_autocheckpoint", wal_autocheckpoint), ("synchronous", "full" if fsync else "normal")),
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,  # for `_writer`; every other connection stays with its thread
        )
        self.models: dict[str, type[pw.Model]] = {}
        for model in MODELS:
            meta = type("Meta", (), {"database": self.db, "table_name": model._meta.table_name})
            self.models[model._meta.table_name] = type(model.__name__, (model,), {"Meta": meta, "__module__": __name__})
        self.db.connect(reuse_if_open=True)
        mode = self.db.execute_sql("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: could not switch to WAL (journal_mode={mode})")
        with self.db.atomic("IMMEDIATE"):
            self.db.create_tables(list(self.models.values()), safe=True)
            self.db.execute_sql("DROP TABLE IF EXISTS snapshots")  # where snapshots were kept before the files
        self._seq = self._max_seq()
        self._prepared = self._seq
        """The seq of the last row `prepare` handed out; `_seq` is the last one written."""
        self._writer: Any = None
        """The one connection `write` uses, from whichever thread writes (one at a time): with
        two, each would find its page cache stale after every write of the other."""

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close this thread's connection (other threads' connections close with their threads)."""
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        """Copy WAL pages into the database file: (busy, wal pages, pages checkpointed)."""
        if mode.upper() not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(f"unknown checkpoint mode {mode!r}")
        return tuple(self.db.execute_sql(f"PRAGMA wal_checkpoint({mode.upper()})").fetchone())

    def probe(self) -> None:
        """A tiny durable write (the header's user_version): raises while the database cannot be
        written (read-only, disk full), so the engine knows when to take orders again."""
        with self.db.atomic("IMMEDIATE"):
            version = self.db.execute_sql("PRAGMA user_version").fetchone()[0]
            self.db.execute_sql(f"PRAGMA user_version = {(version + 1) % 1_000_000}")

    def _max_seq(self) -> int:
        return self.db.execute_sql("SELECT max(seq) FROM journal").fetchone()[0] or 0

    @property
    def last_seq(self) -> int:
        """The last journal seq this store wrote or found at open."""
        return self._seq

    # -- the write path (engine thread only) -------------------------------------------------

    def commit(self, batch: Sequence[tuple[dict, list[Event]]], venue: Venue) -> int:
        """Journal a batch of applied commands and project their events, in one durable
        transaction; returns the seq of the batch's last journal row."""
        rows = self.prepare(batch, venue)
        try:
            return self.write(rows)
        except BaseException:
            self.discard()
            raise

    def prepare(self, batch: Sequence[tuple[dict, list[Event]]], venue: Venue) -> Rows:
        """A batch's journal rows and projections, read from the engine's objects as they are
        now: call it before the engine applies anything else. `write` then makes them durable,
        on any thread, in the order they were prepared."""
        seq = self._prepared
        journal: list[tuple] = []
        touched: dict[str, Order | tuple] = {}
        fresh: set[str] = set()
        """Orders accepted in this batch: written whole (replacing a rejection under the same id);
        the others only get their mutable columns updated."""
        reasons: dict[str, str] = {}
        fills: list[tuple] = []
        for cmd, events in batch:
            seq += 1
            op = cmd.get("op")
            journal.append((seq, _cmd_ts(cmd), op if isinstance(op, str) else str(op), _dumps(cmd)))
            for ev in events:
                kind = type(ev)
                if kind is OrderAccepted:
                    touched[ev.order.id] = ev.order
                    fresh.add(ev.order.id)
                elif kind is OrderFilled:
                    taker, maker = ev.taker, ev.maker
                    touched[taker.id] = taker
                    touched[maker.id] = maker
                    u = units(venue.instruments[ev.symbol])
                    price, qty, ts = u.price(ev.price), u.qty(ev.qty), ev.ts
                    fills.append((ev.trade_id, taker.id, taker.account, ev.symbol, taker.side._value_, price, qty,
                                  CASH(ev.taker_fee), u.quote, "taker", ts))
                    fills.append((ev.trade_id, maker.id, maker.account, ev.symbol, maker.side._value_, price, qty,
                                  CASH(ev.maker_fee), u.quote, "maker", ts))
                elif kind is OrderCancelled:
                    touched[ev.order.id] = ev.order
                    reasons[ev.order.id] = ev.reason
                elif kind is OrderExpired:
                    touched[ev.order.id] = ev.order
                    reasons[ev.order.id] = "expired"
                elif kind is OrderAmended or kind is OrderTriggered:
                    touched[ev.order.id] = ev.order
                elif kind is OrderRejected:
                    if ev.op == "new" and not isinstance(touched.get(ev.order_id), Order):
                        touched[ev.order_id] = self._rejected_row(cmd, ev)
        created: list[tuple] = []
        updated: list[tuple] = []
        rejected: list[tuple] = []
        for oid, item in touched.items():
            if type(item) is tuple:
                rejected.append(item)
            else:
                (created if oid in fresh else updated).append(self._order_row(venue, item, reasons.get(oid)))
        self._prepared = seq
        return Rows(seq, journal, created, updated, rejected, fills)

    def write(self, rows: Rows) -> int:
        """Make prepared rows durable in one transaction; returns the seq of their last journal
        row. After a failure, `discard` whatever was prepared but not written."""
        if not rows.journal:
            return self._seq
        # The sqlite3 connection directly: peewee's transaction bookkeeping costs as much as the
        # inserts of a one-order batch.
        conn = self._writer
        if conn is None:
            conn = self._writer = self.db.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            INSERT_JOURNAL.run(conn, rows.journal)
            INSERT_ORDERS.run(conn, rows.created)
            UPDATE_ORDERS.run(conn, rows.updated)
            INSERT_REJECTED.run(conn, rows.rejected)
            INSERT_FILLS.run(conn, rows.fills)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._seq = rows.seq
        return rows.seq

    def discard(self) -> None:
        """Forget rows prepared but not written: the next `prepare` follows the last write."""
        self._prepared = self._seq

    @staticmethod
    def _order_row(venue: Venue, o: Order, reason: str | None) -> tuple:
        return order_row(units(venue.instruments[o.symbol]), o, reason)

    @staticmethod
    def _rejected_row(cmd: dict, ev: OrderRejected) -> tuple:
        """A `new` the venue refused, from the command as given (it may hold invalid values)."""
        get = cmd.get
        side, otype, tif = get("side"), get("type"), get("tif")
        post_only, reduce_only = get("post_only"), get("reduce_only")
        return (
            ev.order_id, _edge_text(get("client_id")), ev.account or _edge_text(get("account")) or "",
            _edge_text(get("symbol")) or "",
            _edge_text(side.lower() if isinstance(side, str) else side),
            _edge_text(otype.lower() if isinstance(otype, str) else otype) or "limit",
            _edge_text(tif) or "GTC",
            _edge_text(get("price")), _edge_text(get("stop_price")), _edge_text(get("qty")),
            "0", "0", None, OrderStatus.REJECTED.value, post_only is True, reduce_only is True, ev.reason,
            _cmd_ts({"ts": get("expire_ts")}), ev.ts, ev.ts,
        )

    def snapshot(self, seq: int, venue: Venue) -> None:
        """Store the pickled venue as the state after journal row `seq`; older snapshots go."""
        self._check_snapshot_seq(seq)
        write_snapshot(self.snapshot_dir, seq, venue, self._fsync)

    def snapshot_in_child(self, seq: int, venue: Venue) -> int:
        """`snapshot` from a forked child, whose copy-on-write image of the venue stays as it was
        at the fork: the engine goes on at once instead of pausing for as long as pickling a
        large venue takes (about a second per 100 k open orders). Returns the child's pid; the
        child exits 0 once the snapshot is in place."""
        self._check_snapshot_seq(seq)
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            gc.disable()  # a collection would touch, and so copy, every page of the parent's heap
            write_snapshot(self.snapshot_dir, seq, venue, self._fsync)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)

    def _check_snapshot_seq(self, seq: int) -> None:
        if seq > self._seq:
            raise ValueError(f"snapshot seq {seq} is past the journal's last seq {self._seq}")

    def snapshots(self) -> list[tuple[int, Path]]:
        """(seq, file) of this store's snapshots, newest first."""
        return snapshot_files(self.snapshot_dir)

    def recover(self, make_venue: Callable[[], Venue]) -> tuple[Venue, int, int]:
        """(venue, last seq, commands replayed): the newest snapshot (or `make_venue()`) plus
        every journal row after it, replayed through `commands.apply`."""
        for stale in self.snapshot_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)  # a child killed while writing
        venue, last = None, 0
        for seq, path in self.snapshots():
            if seq > self._seq:
                # The journal lost rows the snapshot includes (synchronous=NORMAL and a power
                # loss): that history is gone, and new rows will reuse its seqs.
                log.warning("snapshot at seq %s is past the journal's end (%s); removing it", seq, self._seq)
                path.unlink(missing_ok=True)
                continue
            try:
                venue, last = pickle.loads(path.read_bytes()), seq
                break
            except Exception:
                # e.g. the engine's classes changed since the snapshot was taken: the journal is
                # complete, so replaying all of it gives the same venue, only slower.
                log.warning("snapshot at seq %s does not load; replaying the whole journal", seq, exc_info=True)
                break
        if venue is None:
            venue = make_venue()
        replayed = 0
        for entry in self.journal(after_seq=last):
            try:
                apply(venue, entry["command"])
            except Exception:
                # The live engine thread met the same exception on the same state and journaled
                # the command anyway (e.g. `halt` of an unknown symbol after moving the clock):
                # replaying it reproduces whatever it changed before raising.
                pass
            last = entry["seq"]
            replayed += 1
        return venue, last, replayed

    def next_order_number(self) -> int:
        """1 + the largest all-digit order id ever stored (accepted or rejected), else 1."""
        row = self.db.execute_sql(
            "SELECT max(CAST(id AS INTEGER)) FROM orders WHERE id <> '' AND id NOT GLOB '*[^0-9]*'"
        ).fetchone()
        return (row[0] or 0) + 1

    # -- queries (any thread) ------------------------------------------------------------------

    def journal(self, after_seq: int = 0) -> Iterator[dict]:
        """Journal rows after `after_seq`, oldest first: {seq, ts, op, command (decoded)}.

        Read in chunks, so no statement stays open between items."""
        loads = json.loads
        while True:
            rows = self.db.execute_sql(
                "SELECT seq, ts, op, command FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, JOURNAL_CHUNK),
            ).fetchall()
            for seq, ts, op, command in rows:
                try:
                    decoded = loads(command, parse_float=Decimal)
                except (TypeError, ValueError) as exc:
                    raise CorruptJournal(
                        f"{self.path}: journal row {seq} ({op}) is corrupt ({exc}); refusing to start rather than "
                        f"drop an acknowledged command. Restore the database from a backup, or inspect it with "
                        f"`sqlite3 {self.path} \"SELECT * FROM journal WHERE seq >= {seq}\"`"
                    ) from None
                if not isinstance(decoded, dict):
                    raise CorruptJournal(f"{self.path}: journal row {seq} ({op}) is not a command object")
                yield {"seq": seq, "ts": ts, "op": op, "command": decoded}
            if len(rows) < JOURNAL_CHUNK:
                return
            after_seq = rows[-1][0]

    def get_order(self, order_id: str) -> dict | None:
        row = self.db.execute_sql(f"SELECT {_ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
        return None if row is None else _order_dict(row)

    def list_orders(
        self,
        account: str | None = None,
        symbol: str | None = None,
        statuses: Iterable[str] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
        before_key: Sequence | None = None,
    ) -> tuple[list[dict], tuple[int, str] | None]:
        """Orders newest first (by created_ns, then id); `since_ns` inclusive, `until_ns` exclusive.

        Returns (rows, next_key): pass next_key as `before_key` for the next page; None when
        there is none. A key is (created_ns, id); a JSON round trip (a list) is fine."""
        if limit <= 0:
            return [], None
        queries = self.order_queries(account, symbol, statuses, since_ns, until_ns, limit + 1, before_key)
        if not queries:
            return [], None
        rows = self._read_merged(queries, _order_key, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return [_order_dict(r) for r in rows], (_order_key(rows[-1]) if more else None)

    def order_queries(
        self,
        account: str | None = None,
        symbol: str | None = None,
        statuses: Iterable[str] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
        before_key: Sequence | None = None,
    ) -> list[tuple[str, list]]:
        """The SQL behind `list_orders` (exposed for EXPLAIN QUERY PLAN checks).

        One query per status when there is a status set or an account: each then walks the
        (account, status, created_ns, id) or (status, created_ns, id) index in order and stops
        after `limit` rows, and `list_orders` merges the streams. `status IN (...)` instead would
        make SQLite sort every matching row."""
        if isinstance(statuses, str):
            statuses = [statuses]
        wanted = None if statuses is None else sorted({str(s) for s in statuses})
        if wanted == []:
            return []
        base: list[str] = []
        params: list[Any] = []
        if account is not None:
            base.append("account = ?")
            params.append(account)
        if symbol is not None:
            base.append("symbol = ?")
            params.append(symbol)
        self._range(base, params, "created_ns", since_ns, until_ns, before_key)
        if wanted is None and account is not None:
            wanted = list(STATUSES)
        parts = [(base, params)] if wanted is None else [(base + ["status = ?"], params + [s]) for s in wanted]
        return [
            (f"SELECT {_ORDER_COLS} FROM orders{_where(w)} ORDER BY created_ns DESC, id DESC LIMIT ?", p + [limit])
            for w, p in parts
        ]

    def list_fills(
        self,
        account: str | None = None,
        symbol: str | None = None,
        order_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
        before_key: Sequence | None = None,
    ) -> tuple[list[dict], tuple[int, int] | None]:
        """Fills newest first (by ts, then id); same paging contract as `list_orders`, with
        (ts, id) keys."""
        if limit <= 0:
            return [], None
        sql, params = self.fill_query(account, symbol, order_id, since_ns, until_ns, limit + 1, before_key)
        rows = self.db.execute_sql(sql, params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [_fill_dict(r) for r in rows], ((rows[-1][_I_TS], rows[-1][0]) if more else None)

    def fill_query(
        self,
        account: str | None = None,
        symbol: str | None = None,
        order_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
        before_key: Sequence | None = None,
    ) -> tuple[str, list]:
        """The SQL behind `list_fills`."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("order_id", order_id), ("account", account), ("symbol", symbol)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        self._range(where, params, "ts", since_ns, until_ns, before_key)
        return f"SELECT {_FILL_COLS} FROM fills{_where(where)} ORDER BY ts DESC, id DESC LIMIT ?", params + [limit]

    @staticmethod
    def _range(where: list[str], params: list[Any], column: str, since: int | None, until: int | None,
               before: Sequence | None) -> None:
        if since is not None:
            where.append(f"{column} >= ?")
            params.append(since)
        if until is not None:
            where.append(f"{column} < ?")
            params.append(until)
        if before is not None:
            ts, key = before
            where.append(f"({column}, id) < (?, ?)")
            params += (int(ts), key)

    def _read_merged(self, sqls: list[tuple[str, list]], key: Callable, limit: int) -> list[tuple]:
        if len(sqls) == 1:
            sql, params = sqls[0]
            return self.db.execute_sql(sql, params).fetchall()
        with self.db.atomic():  # one read transaction: every status sees the same snapshot
            streams = [self.db.execute_sql(sql, params).fetchall() for sql, params in sqls]
        merged = heapq.merge(*streams, key=key, reverse=True)
        return [row for _, row in zip(range(limit), merged)]

    def explain(self, sql: str, params: Sequence[Any] = ()) -> list[str]:
        """EXPLAIN QUERY PLAN details, for tests and tuning."""
        return [row[-1] for row in self.db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()]

    # -- risk limits, strategies, alerts (low volume; any thread, SQLite serialises writers) ----

    def set_risk_limit(self, key: str, value: Decimal | str | None, account: str | None = None,
                       symbol: str | None = None, updated_ns: int = 0) -> None:
        """Upsert one limit at a scope; value None = no limit."""
        model = self.models["risk_limits"]
        text = None if value is None else (str(value) if isinstance(value, Decimal) else str(value))
        model.insert(account=account or "", symbol=symbol or "", key=key, value=text,
                     updated_ns=updated_ns).on_conflict_replace().execute()

    def delete_risk_limit(self, key: str, account: str | None = None, symbol: str | None = None) -> bool:
        model = self.models["risk_limits"]
        return bool(model.delete().where((model.account == (account or "")) & (model.symbol == (symbol or ""))
                                         & (model.key == key)).execute())

    def list_risk_limits(self) -> list[dict]:
        """Every stored limit, globals first: {account, symbol (None = any), key, value, updated_ns}."""
        model = self.models["risk_limits"]
        out = []
        for row in model.select().order_by(model.account, model.symbol, model.key).dicts():
            row["account"] = row["account"] or None
            row["symbol"] = row["symbol"] or None
            out.append(row)
        return out

    def upsert_strategy(self, id: str, kind: str, params: dict, state: str, account: str | None = None,
                        ts: int = 0) -> None:
        """Create or update a strategy; created_ns is kept from the first insert."""
        model = self.models["strategies"]
        model.insert(id=id, kind=kind, params=_dumps(params), account=account, state=state, created_ns=ts,
                     updated_ns=ts).on_conflict(
            conflict_target=[model.id],
            preserve=[model.kind, model.params, model.account, model.state, model.updated_ns],
        ).execute()

    def get_strategy(self, id: str) -> dict | None:
        model = self.models["strategies"]
        row = model.select().where(model.id == id).dicts().first()
        return None if row is None else _decode_json(row, "params")

    def list_strategies(self, account: str | None = None, state: str | None = None) -> list[dict]:
        model = self.models["strategies"]
        query = model.select().order_by(model.created_ns, model.id)
        if account is not None:
            query = query.where(model.account == account)
        if state is not None:
            query = query.where(model.state == state)
        return [_decode_json(row, "params") for row in query.dicts()]

    def delete_strategy(self, id: str) -> bool:
        model = self.models["strategies"]
        return bool(model.delete().where(model.id == id).execute())

    def upsert_alert(self, id: str, rule: str, severity: str, state: str, started_ns: int,
                     labels: dict | None = None, summary: str = "", resolved_ns: int | None = None,
                     acked: bool | None = None) -> None:
        """Create or update an alert; `acked` None keeps the stored flag (False for a new alert)."""
        model = self.models["alerts"]
        preserve = [model.rule, model.severity, model.state, model.labels, model.summary, model.started_ns,
                    model.resolved_ns]
        if acked is not None:
            preserve.append(model.acked)
        model.insert(id=id, rule=rule, severity=severity, state=state, labels=_dumps(labels or {}),
                     summary=summary, started_ns=started_ns, resolved_ns=resolved_ns,
                     acked=bool(acked)).on_conflict(conflict_target=[model.id], preserve=preserve).execute()

    def ack_alert(self, id: str, acked: bool = True) -> bool:
        model = self.models["alerts"]
        return bool(model.update(acked=acked).where(model.id == id).execute())

    def list_alerts(self, state: str | None = None, limit: int = 100) -> list[dict]:
        """Alerts, newest first."""
        model = self.models["alerts"]
        query = model.select().order_by(model.started_ns.desc(), model.id.desc()).limit(limit)
        if state is not None:
            query = query.where(model.state == state)
        return [_decode_json(row, "labels") for row in query.dicts()]


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


_I_CREATED = ORDER_COLUMNS.index("created_ns")
_I_POST = ORDER_COLUMNS.index("post_only")
_I_REDUCE = ORDER_COLUMNS.index("reduce_only")
_I_TS = FILL_COLUMNS.index("ts")


def _order_key(row: tuple) -> tuple[int, str]:
    return row[_I_CREATED], row[0]


def _order_dict(row: tuple) -> dict:
    out = dict(zip(ORDER_COLUMNS, row))
    out["post_only"] = bool(row[_I_POST])
    out["reduce_only"] = bool(row[_I_REDUCE])
    return out


def _fill_dict(row: tuple) -> dict:
    return dict(zip(FILL_COLUMNS, row))


def _decode_json(row: dict, key: str) -> dict:
    row[key] = json.loads(row[key], parse_float=Decimal)
    return row
