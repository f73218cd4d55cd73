"""Order and fill history: paged queries over the orders and fills tables, from any thread.

Pages are newest first, by keyset: a page's last (time, id) is the key the next page starts
before, so paging deep costs no more than the first page.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Iterable, Sequence

import peewee as pw

from tradsys.daemon.store.tables import FILL_COLUMNS, ORDER_COLUMNS, STATUSES

_ORDER_COLS = ", ".join(ORDER_COLUMNS)
_FILL_COLS = ", ".join(FILL_COLUMNS)
_I_CREATED = ORDER_COLUMNS.index("created_ns")
_I_POST = ORDER_COLUMNS.index("post_only")
_I_REDUCE = ORDER_COLUMNS.index("reduce_only")
_I_TS = FILL_COLUMNS.index("ts")


class History:
    """Reads the orders and fills tables; each thread on its own connection (peewee keeps one
    per thread), which WAL lets read while the journal writes.

    Each read first waits for `barrier`: the tables are written behind the journal, and a read
    must see every order acknowledged before it (`Projector.barrier`)."""

    def __init__(self, db: pw.SqliteDatabase, barrier: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.barrier = barrier

    def get_order(self, order_id: str) -> dict | None:
        self.barrier()
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
        self.barrier()
        queries = self.order_queries(account, symbol, statuses, since_ns, until_ns, limit + 1, before_key)
        if not queries:
            return [], None
        rows = self._read_merged(queries, _order_key, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return [_order_dict(r) for r in rows], (_order_key(rows[-1]) if more else None)

    def order_queries(self, account: str | None = None, symbol: str | None = None,
                      statuses: Iterable[str] | None = None, since_ns: int | None = None,
                      until_ns: int | None = None, limit: int = 100,
                      before_key: Sequence | None = None) -> list[tuple[str, list]]:
        """The SQL behind `list_orders`, for the same arguments (exposed for EXPLAIN QUERY PLAN checks).

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
        _range(base, params, "created_ns", since_ns, until_ns, before_key)
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
        self.barrier()
        sql, params = self.fill_query(account, symbol, order_id, since_ns, until_ns, limit + 1, before_key)
        rows = self.db.execute_sql(sql, params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [dict(zip(FILL_COLUMNS, r)) for r in rows], ((rows[-1][_I_TS], rows[-1][0]) if more else None)

    def fill_query(self, account: str | None = None, symbol: str | None = None, order_id: str | None = None,
                   since_ns: int | None = None, until_ns: int | None = None, limit: int = 100,
                   before_key: Sequence | None = None) -> tuple[str, list]:
        """The SQL behind `list_fills`, for the same arguments."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("order_id", order_id), ("account", account), ("symbol", symbol)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        _range(where, params, "ts", since_ns, until_ns, before_key)
        return f"SELECT {_FILL_COLS} FROM fills{_where(where)} ORDER BY ts DESC, id DESC LIMIT ?", params + [limit]

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


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def _order_key(row: tuple) -> tuple[int, str]:
    return row[_I_CREATED], row[0]


def _order_dict(row: tuple) -> dict:
    out = dict(zip(ORDER_COLUMNS, row))
    out["post_only"] = bool(row[_I_POST])
    out["reduce_only"] = bool(row[_I_REDUCE])
    return out
