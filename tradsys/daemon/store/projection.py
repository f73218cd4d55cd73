"""The orders and fills tables as projections of a batch's events, and the statements that write
them: the journal rows in the batch's durable transaction (`Journal.write`), the tables behind it
(`projector`)."""

from __future__ import annotations

from decimal import Decimal
from itertools import chain
from typing import Any, NamedTuple, Sequence

from tradsys.daemon.records import CASH, order_row, units
from tradsys.daemon.store.codec import dumps
from tradsys.daemon.store.tables import FILL_COLUMNS, ORDER_COLUMNS
from tradsys.engine import events
from tradsys.engine.commands import parse_ts
from tradsys.engine.enums import OrderStatus
from tradsys.engine.order import Order
from tradsys.engine.venue import Venue


class Insert:
    """An INSERT that takes many rows per statement.

    sqlite3 releases the interpreter around every statement step and must take it back after;
    with `executemany` that is once per row, and on the writer thread, while the engine thread
    is busy, each retake may wait for a switch interval. Here a statement carries up to `CHUNK`
    rows; row counts are split into powers of two, so a few statements serve all.
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
_ORDER_INSERT = f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)})"
_ORDER_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in ORDER_COLUMNS if c != "id")
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


class Rows(NamedTuple):
    """A prepared batch: journal rows up to `seq`, and the projections of its events."""

    seq: int
    journal: list[tuple]
    created: list[tuple]
    updated: list[tuple]
    rejected: list[tuple]
    fills: list[tuple]

    def write_journal(self, conn: Any) -> None:
        """The journal rows, on `conn`, inside the caller's transaction."""
        INSERT_JOURNAL.run(conn, self.journal)

    def write_tables(self, conn: Any) -> None:
        """The orders and fills rows, on `conn`, inside the caller's transaction."""
        INSERT_ORDERS.run(conn, self.created)
        UPDATE_ORDERS.run(conn, self.updated)
        INSERT_REJECTED.run(conn, self.rejected)
        INSERT_FILLS.run(conn, self.fills)


def project(batch: Sequence[tuple[dict, list[events.Event]]], venue: Venue, seq: int) -> Rows:
    """A batch's journal rows (numbered after `seq`) and projections, read from the engine's
    objects as they are now."""
    journal: list[tuple] = []
    touched: dict[str, Order | tuple] = {}
    fresh: set[str] = set()
    """Orders accepted in this batch: written whole (replacing a rejection under the same id);
    the others only get their mutable columns updated."""
    reasons: dict[str, str] = {}
    fills: list[tuple] = []
    for cmd, evs in batch:
        seq += 1
        op = cmd.get("op")
        journal.append((seq, _command_ts(cmd), op if isinstance(op, str) else str(op), dumps(cmd)))
        for ev in evs:
            kind = type(ev)
            if kind is events.OrderAccepted:
                touched[ev.order.id] = ev.order
                fresh.add(ev.order.id)
            elif kind is events.OrderFilled:
                taker, maker = ev.taker, ev.maker
                touched[taker.id] = taker
                touched[maker.id] = maker
                u = units(venue.instruments[ev.symbol])
                price, qty, ts = u.price(ev.price), u.qty(ev.qty), ev.ts
                fills.append((ev.trade_id, taker.id, taker.account, ev.symbol, taker.side._value_, price, qty,
                              CASH(ev.taker_fee), u.quote, "taker", ts))
                fills.append((ev.trade_id, maker.id, maker.account, ev.symbol, maker.side._value_, price, qty,
                              CASH(ev.maker_fee), u.quote, "maker", ts))
            elif kind is events.OrderCancelled:
                touched[ev.order.id] = ev.order
                reasons[ev.order.id] = ev.reason
            elif kind is events.OrderExpired:
                touched[ev.order.id] = ev.order
                reasons[ev.order.id] = "expired"
            elif kind is events.OrderAmended or kind is events.OrderTriggered:
                touched[ev.order.id] = ev.order
            elif kind is events.OrderRejected:
                if ev.op == "new" and not isinstance(touched.get(ev.order_id), Order):
                    touched[ev.order_id] = rejected_row(cmd, ev)
    created: list[tuple] = []
    updated: list[tuple] = []
    rejected: list[tuple] = []
    for oid, item in touched.items():
        if type(item) is tuple:
            rejected.append(item)
        else:
            (created if oid in fresh else updated).append(
                order_row(units(venue.instruments[item.symbol]), item, reasons.get(oid)))
    return Rows(seq, journal, created, updated, rejected, fills)


def rejected_row(cmd: dict, ev: events.OrderRejected) -> tuple:
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
        _command_ts({"ts": get("expire_ts")}), ev.ts, ev.ts,
    )


def _edge_text(value: object) -> str | None:
    """A command field as stored for a rejected order: as given, Decimals as decimal text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    return dumps(value)


def _command_ts(cmd: dict) -> int | None:
    """The command's `ts` in ns, when it has a valid one."""
    ts = cmd.get("ts")
    if type(ts) is int and ts >= 0:
        return ts
    try:
        return parse_ts(ts) if ts is not None else None
    except ValueError:
        return None
