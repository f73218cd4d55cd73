"""The SQLite tables, as peewee models: the on-disk layout an existing home directory must keep.

Declared unbound; each Store binds its own subclasses to its own database (`bind`), so that
several stores (tests, tools) can live in one process.

Prices, quantities and fees are stored as exact decimal TEXT ("100.01", "0.5").
"""

from __future__ import annotations

import peewee as pw

from tradsys.daemon.records import ORDER_FIELDS
from tradsys.engine.enums import OrderStatus

STATUSES = tuple(s.value for s in OrderStatus)


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


class ProjectionRow(pw.Model):
    """One row: the last journal seq whose events the orders and fills tables hold."""

    seq = pw.BigIntegerField()

    class Meta:
        table_name = "projection"
        primary_key = False


MODELS: tuple[type[pw.Model], ...] = (JournalRow, OrderRow, FillRow, RiskLimitRow, StrategyRow, AlertRow, ProjectionRow)

ORDER_COLUMNS = tuple(OrderRow._meta.sorted_field_names)
assert ORDER_COLUMNS == ORDER_FIELDS, "records.order_row builds rows in the table's column order"
FILL_COLUMNS = tuple(FillRow._meta.sorted_field_names)


def bind(db: pw.Database) -> dict[str, type[pw.Model]]:
    """Subclasses of every model bound to `db`, by table name."""
    bound: dict[str, type[pw.Model]] = {}
    for model in MODELS:
        meta = type("Meta", (), {"database": db, "table_name": model._meta.table_name})
        bound[model._meta.table_name] = type(model.__name__, (model,), {"Meta": meta, "__module__": __name__})
    return bound
