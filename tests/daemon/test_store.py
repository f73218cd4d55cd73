"""The store: the journal (one durable commit per batch) and its projections, recovery, crash safety, history queries.

Every test uses a real SQLite file in tmp_path. Expected values are worked out by hand from the
venue's defaults: fees maker 1 bp, taker 5 bp, rounded up to 1e-8; BTC-USD tick 0.01, lot 0.001.
"""

import json
import os
import pickle
import random
import selectors
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradsys.daemon.records import CASH, scaler as _scaler
from tradsys.daemon.store import STATUSES, Store
from tradsys.engine import OrderRejected, Venue
from tradsys.engine.commands import apply, event_dict, fmt, resting_dicts
from tradsys.engine.errors import Rejected
from tradsys.engine.instrument import from_cash

BTC, ETH, SOL = "BTC-USD", "ETH-USD", "SOL-USD"
S = 1_000_000_000
T0 = 1_767_600_000 * S
REPO = Path(__file__).resolve().parents[2]


def new(oid: str, side: str, qty: str, price: str | None = None, *, account: str = "a1", symbol: str = BTC,
        ts: int = T0, **kw) -> dict:
    cmd = {"op": "new", "id": oid, "account": account, "symbol": symbol, "side": side,
           "type": kw.pop("type", "limit" if price is not None else "market"), "qty": qty, "ts": ts}
    if price is not None:
        cmd["price"] = price
    return cmd | kw


def applied(venue: Venue, *cmds: dict) -> list[tuple[dict, list]]:
    """Run commands as the engine thread does: every command goes into the batch, even one the
    venue refused or one that raised (after possibly moving the clock)."""
    batch = []
    for cmd in cmds:
        try:
            events = apply(venue, cmd)
        except (ValueError, Rejected):
            events = []
        batch.append((cmd, events))
    return batch


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "tradsys.db")
    yield s
    s.close()


def all_orders(store: Store, **filters) -> list[dict]:
    rows, key, pages = [], None, 0
    while True:
        page, key = store.history.list_orders(limit=7, before_key=key, **filters)
        rows += page
        pages += 1
        assert pages < 10_000
        if key is None:
            return rows


# -- commit: journal and projections -------------------------------------------------------------


def test_pragmas_wal_full_sync(store: Store) -> None:
    db = store.db
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 0
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] > 0


def test_commit_journals_commands_and_projects_a_fill(store: Store) -> None:
    v = Venue()
    cmds = [
        new("1", "sell", "0.5", "100.01", account="a1", ts=T0 + 1, client_id="c-1"),
        new("2", "buy", "0.3", "100.05", account="a2", ts=T0 + 2),
    ]
    seq = store.journal.commit(applied(v, *cmds), v)
    assert seq == 2 == store.journal.last_seq

    journal = list(store.journal.entries())
    assert [(r["seq"], r["op"], r["ts"]) for r in journal] == [(1, "new", T0 + 1), (2, "new", T0 + 2)]
    assert [r["command"] for r in journal] == cmds
    assert [r["seq"] for r in store.journal.entries(after_seq=1)] == [2]

    maker = store.history.get_order("1")
    assert maker == {
        "id": "1", "client_id": "c-1", "account": "a1", "symbol": BTC, "side": "sell", "type": "limit", "tif": "GTC",
        "price": "100.01", "stop_price": None, "qty": "0.5", "filled_qty": "0.3", "open_qty": "0.2",
        "avg_price": "100.01", "status": "partially_filled", "post_only": False, "reduce_only": False, "reason": None,
        "expire_ns": None, "created_ns": T0 + 1, "updated_ns": T0 + 2,
    }
    taker = store.history.get_order("2")
    assert (taker["price"], taker["qty"], taker["filled_qty"], taker["open_qty"], taker["avg_price"], taker["status"]) == (
        "100.05", "0.3", "0.3", "0", "100.01", "filled")
    assert store.history.get_order("3") is None

    # notional 100.01 * 0.3 = 30.003 USD; taker 5 bp = 0.0150015, maker 1 bp = 0.0030003 (both exact)
    fills, key = store.history.list_fills()
    assert key is None
    by_liq = {f["liquidity"]: f for f in fills}
    assert len(fills) == 2
    assert by_liq["taker"] | {"id": None} == {
        "id": None, "trade_id": 1, "order_id": "2", "account": "a2", "symbol": BTC, "side": "buy", "price": "100.01",
        "qty": "0.3", "fee": "0.0150015", "fee_currency": "USD", "liquidity": "taker", "ts": T0 + 2,
    }
    assert by_liq["maker"] | {"id": None} == {
        "id": None, "trade_id": 1, "order_id": "1", "account": "a1", "symbol": BTC, "side": "sell", "price": "100.01",
        "qty": "0.3", "fee": "0.0030003", "fee_currency": "USD", "liquidity": "maker", "ts": T0 + 2,
    }
    assert [f["order_id"] for f in store.history.list_fills(account="a1")[0]] == ["1"]
    assert [f["order_id"] for f in store.history.list_fills(order_id="2")[0]] == ["2"]


def test_average_price_and_fees_over_two_levels(store: Store) -> None:
    v = Venue()
    batch = applied(
        v,
        new("s1", "sell", "0.1", "100.01", account="m"),
        new("s2", "sell", "0.2", "100.02", account="m"),
        new("b", "buy", "0.3", "100.05", account="t", ts=T0 + 5),
    )
    store.journal.commit(batch, v)
    # (100.01 * 0.1 + 100.02 * 0.2) / 0.3 = 30.005 / 0.3 = 100.01666..., 28 significant digits
    assert store.history.get_order("b")["avg_price"] == "100.0166666666666666666666667"
    assert store.history.get_order("s2")["avg_price"] == "100.02"
    fills = sorted((f["trade_id"], f["order_id"], f["liquidity"], f["price"], f["qty"], f["fee"])
                   for f in store.history.list_fills()[0])
    # 100.01 * 0.1 = 10.001 USD: taker 5 bp 0.0050005, maker 1 bp 0.0010001
    # 100.02 * 0.2 = 20.004 USD: taker 5 bp 0.010002,  maker 1 bp 0.0020004
    assert fills == [
        (1, "b", "taker", "100.01", "0.1", "0.0050005"),
        (1, "s1", "maker", "100.01", "0.1", "0.0010001"),
        (2, "b", "taker", "100.02", "0.2", "0.010002"),
        (2, "s2", "maker", "100.02", "0.2", "0.0020004"),
    ]


def test_fee_rounds_up_to_the_cash_unit(store: Store) -> None:
    v = Venue()
    # SOL-USD: tick 0.001, lot 0.01. 0.01 SOL at 20.001 = 0.20001 USD; taker 5 bp = 0.000100005 -> 0.00010001
    store.journal.commit(applied(v, new("m", "sell", "0.01", "20.001", symbol=SOL, account="m"),
                         new("t", "buy", "0.01", "20.001", symbol=SOL, account="t")), v)
    fees = {f["liquidity"]: f["fee"] for f in store.history.list_fills(symbol=SOL)[0]}
    # maker 1 bp = 0.000020001 -> 0.00002001
    assert fees == {"taker": "0.00010001", "maker": "0.00002001"}


def test_rejected_new_orders_are_stored_with_their_reason(store: Store) -> None:
    v = Venue()
    batch = applied(
        v,
        new("r1", "buy", "0.5", "100.001", client_id="x"),  # not a multiple of the tick
        new("r2", "buy", "20", "60000"),  # notional 1.2M > 1M default limit
        new("r3", "buy", "1", "10", symbol="DOGE-USD"),
        new("r4", "up", "1", "10"),
    )
    store.journal.commit(batch, v)
    r1 = store.history.get_order("r1")
    assert r1 == {
        "id": "r1", "client_id": "x", "account": "a1", "symbol": BTC, "side": "buy", "type": "limit", "tif": "GTC",
        "price": "100.001", "stop_price": None, "qty": "0.5", "filled_qty": "0", "open_qty": "0", "avg_price": None,
        "status": "rejected", "post_only": False, "reduce_only": False, "reason": "price_precision", "expire_ns": None,
        "created_ns": T0, "updated_ns": T0,
    }
    r2 = store.history.get_order("r2")
    assert (r2["status"], r2["reason"], r2["qty"], r2["price"], r2["created_ns"]) == ("rejected", "max_notional", "20",
                                                                                       "60000", T0)
    assert (store.history.get_order("r3")["symbol"], store.history.get_order("r3")["reason"]) == ("DOGE-USD", "unknown_symbol")
    assert (store.history.get_order("r4")["side"], store.history.get_order("r4")["reason"]) == ("up", "invalid_side")
    rows, _ = store.history.list_orders(statuses=["rejected"])
    assert {r["id"] for r in rows} == {"r1", "r2", "r3", "r4"}


def test_a_rejection_never_overwrites_an_accepted_order_with_the_same_id(store: Store) -> None:
    v = Venue()
    store.journal.commit(applied(v, new("7", "buy", "1", "100")), v)
    # a duplicate id, and a malformed command reusing the id: both rejected, in later batches
    store.journal.commit(applied(v, new("7", "sell", "2", "101", ts=T0 + 1)), v)
    store.journal.commit(applied(v, new("7", "sell", "2", "1.001", ts=T0 + 2)), v)
    row = store.history.get_order("7")
    assert (row["side"], row["qty"], row["price"], row["status"]) == ("buy", "1", "100", "new")
    # ... nor in the same batch
    store.journal.commit(applied(v, new("8", "buy", "1", "99", ts=T0 + 3), new("8", "sell", "3", "99", ts=T0 + 3)), v)
    assert (store.history.get_order("8")["side"], store.history.get_order("8")["status"]) == ("buy", "new")
    # a rejected id may be used again, and the accepted order replaces the rejection
    store.journal.commit(applied(v, new("9", "buy", "1", "1.001", ts=T0 + 4)), v)
    assert store.history.get_order("9")["status"] == "rejected"
    store.journal.commit(applied(v, new("9", "buy", "1", "98", ts=T0 + 5)), v)
    row = store.history.get_order("9")
    assert (row["status"], row["price"], row["reason"], row["created_ns"]) == ("new", "98", None, T0 + 5)
    # same in one batch, either order
    store.journal.commit(applied(v, new("10", "buy", "1", "1.001", ts=T0 + 6), new("10", "buy", "1", "97", ts=T0 + 6)), v)
    assert (store.history.get_order("10")["status"], store.history.get_order("10")["price"]) == ("new", "97")


def test_rejected_cancel_and_amend_leave_orders_alone(store: Store) -> None:
    v = Venue()
    store.journal.commit(applied(v, new("1", "buy", "1", "100")), v)
    before = store.history.get_order("1")
    batch = applied(
        v,
        {"op": "cancel", "id": "nope", "ts": T0 + 1},
        {"op": "amend", "id": "1", "price": "-5", "ts": T0 + 2},  # invalid price: rejected amend
        {"op": "cancel", "id": "1", "account": "someone-else", "ts": T0 + 3},
    )
    assert all(type(e).__name__ == "OrderRejected" for _, evs in batch for e in evs)
    assert store.journal.commit(batch, v) == 4
    assert store.history.get_order("1") == before
    assert store.history.get_order("nope") is None
    assert [r["op"] for r in store.journal.entries()] == ["new", "cancel", "amend", "cancel"]


@pytest.mark.parametrize("one_batch", [False, True])
def test_amend_and_cancel_transitions(tmp_path: Path, one_batch: bool) -> None:
    store = Store(tmp_path / "s.db")
    v = Venue()
    steps = [
        [new("1", "buy", "1", "100", ts=T0)],
        [{"op": "amend", "id": "1", "qty": "0.4", "ts": T0 + 10}],
        [{"op": "amend", "id": "1", "price": "100.5", "ts": T0 + 20}],
        [new("s", "sell", "0.1", "100.5", account="b", ts=T0 + 30)],
        [{"op": "cancel", "id": "1", "ts": T0 + 40}],
    ]
    expected = [
        ("1", "0.4", "0", "0.4", "100", "new", None, T0 + 10),
        ("1", "0.4", "0", "0.4", "100.5", "new", None, T0 + 20),
        ("1", "0.4", "0.1", "0.3", "100.5", "partially_filled", None, T0 + 30),
        ("1", "0.4", "0.1", "0", "100.5", "cancelled", "user", T0 + 40),
    ]

    def row() -> tuple:
        r = store.history.get_order("1")
        return (r["id"], r["qty"], r["filled_qty"], r["open_qty"], r["price"], r["status"],
                r["reason"], r["updated_ns"])

    if one_batch:
        store.journal.commit(applied(v, *[c for step in steps for c in step]), v)
        assert row() == expected[-1]
    else:
        store.journal.commit(applied(v, *steps[0]), v)
        for step, want in zip(steps[1:], expected):
            store.journal.commit(applied(v, *step), v)
            assert row() == want
    assert store.history.get_order("1")["created_ns"] == T0
    assert store.history.get_order("s")["status"] == "filled"
    store.close()


def test_expiry_and_stop_trigger_are_projected(store: Store) -> None:
    v = Venue()
    store.journal.commit(applied(
        v,
        new("g", "buy", "1", "99", tif="GTD", expire_ts=T0 + 5 * S),
        new("stop", "buy", "0.1", type="stop", stop_price="100.5"),
        new("ask", "sell", "0.2", "100.5", account="m"),
    ), v)
    g = store.history.get_order("g")
    assert (g["tif"], g["expire_ns"], g["status"]) == ("GTD", T0 + 5 * S, "new")
    assert (store.history.get_order("stop")["stop_price"], store.history.get_order("stop")["price"]) == ("100.5", None)
    store.journal.commit(applied(v, {"op": "advance", "ts": T0 + 5 * S}), v)
    g = store.history.get_order("g")
    assert (g["status"], g["reason"], g["open_qty"], g["updated_ns"]) == ("expired", "expired", "0", T0 + 5 * S)
    # a trade at 100.5 triggers the buy stop, which then lifts the rest of the ask
    store.journal.commit(applied(v, new("t", "buy", "0.05", "100.5", account="x", ts=T0 + 6 * S)), v)
    stop = store.history.get_order("stop")
    assert (stop["status"], stop["filled_qty"], stop["avg_price"]) == ("filled", "0.1", "100.5")
    assert store.history.get_order("ask")["status"] == "partially_filled"
    assert store.history.get_order("ask")["open_qty"] == "0.05"


def test_decimal_values_in_commands_are_journaled_exactly(store: Store) -> None:
    v = Venue()
    cmd = new("d", "buy", Decimal("0.500"), Decimal("100.10"))
    store.journal.commit(applied(v, cmd, {"op": "deposit", "account": "a1", "currency": "USD", "amount": Decimal("1E+3"),
                                  "ts": T0}), v)
    text = store.db.execute_sql("SELECT command FROM journal WHERE seq = 1").fetchone()[0]
    assert '"price":"100.10"' in text and '"qty":"0.500"' in text and " " not in text
    row = store.history.get_order("d")
    assert (row["price"], row["qty"]) == ("100.1", "0.5")
    recovered, _, _ = store.journal.recover(Venue)
    assert recovered.accounts["a1"].wallets["USD"].balance == v.accounts["a1"].wallets["USD"].balance


def test_empty_batch_commits_nothing(store: Store) -> None:
    assert store.journal.commit([], Venue()) == 0
    assert list(store.journal.entries()) == []


def test_next_order_number(store: Store) -> None:
    v = Venue()
    assert store.journal.next_order_number() == 1
    store.journal.commit(applied(v, new("9", "buy", "1", "100"), new("12", "buy", "1", "1.001"),  # rejected counts too
                         new("abc", "buy", "1", "100"), new("1e5", "buy", "1", "100"), new("100x", "buy", "1", "100")),
                 v)
    assert store.journal.next_order_number() == 13


# -- recovery --------------------------------------------------------------------------------


def random_stream(seed: int, n: int) -> list[dict]:
    """A seeded session: limit/market/stop orders, cancels and amends of live and dead ids,
    duplicates, post-only, IOC/FOK/GTD, deposits, a tight rate limit, halts, and admin
    commands that fail after moving the clock."""
    rng = random.Random(seed)
    accounts = [f"a{i}" for i in range(6)]
    mids = {BTC: 10_000, ETH: 2_000}
    ts = T0
    ids: list[str] = []
    out: list[dict] = [
        {"op": "limit", "key": "max_orders_per_second", "value": "1", "account": "a0", "ts": ts},
        {"op": "limit", "key": "price_band_pct", "value": "20", "ts": ts},
    ]
    for i in range(n):
        ts += rng.choice((0, 0, 1, 50_000_000, 300_000_000, 2 * S))
        sym = BTC if rng.random() < 0.7 else ETH
        mids[sym] += rng.choice((-1, 0, 0, 1))
        acct = rng.choice(accounts)
        r = rng.random()
        if r < 0.5 or len(ids) < 5:
            oid = rng.choice(ids) if ids and rng.random() < 0.02 else str(i + 1)
            ids.append(oid)
            side = rng.choice(("buy", "sell"))
            off = rng.randint(-3, 12)
            price = mids[sym] + (-off if side == "buy" else off)
            cmd = new(oid, side, str(Decimal(rng.randint(1, 300)) / 1000), str(Decimal(price) / 100), account=acct,
                      symbol=sym, ts=ts)
            k = rng.random()
            if k < 0.08:
                cmd["tif"] = rng.choice(("IOC", "FOK"))
            elif k < 0.12:
                cmd["tif"], cmd["expire_ts"] = "GTD", ts + rng.randint(1, 5) * S
            elif k < 0.16:
                cmd["post_only"] = True
            if rng.random() < 0.1:
                cmd["client_id"] = f"c{rng.randint(0, 40)}"
            out.append(cmd)
        elif r < 0.56:
            out.append(new(str(i + 1), rng.choice(("buy", "sell")), str(Decimal(rng.randint(1, 400)) / 1000),
                           account=acct, symbol=sym, ts=ts))
            ids.append(str(i + 1))
        elif r < 0.59:
            side = rng.choice(("buy", "sell"))
            stop = mids[sym] + (5 if side == "buy" else -5)
            cmd = new(str(i + 1), side, "0.05", account=acct, symbol=sym, ts=ts, type="stop",
                      stop_price=str(Decimal(stop) / 100))
            out.append(cmd)
            ids.append(str(i + 1))
        elif r < 0.79:
            out.append({"op": "cancel", "id": rng.choice(ids) if rng.random() < 0.95 else "ghost", "ts": ts})
        elif r < 0.92:
            cmd = {"op": "amend", "id": rng.choice(ids), "ts": ts}
            if rng.random() < 0.6:
                cmd["qty"] = str(Decimal(rng.randint(1, 300)) / 1000)
            if rng.random() < 0.5 or "qty" not in cmd:
                cmd["price"] = str(Decimal(mids[sym] + rng.randint(-10, 10)) / 100)
            out.append(cmd)
        elif r < 0.94:
            out.append({"op": "deposit", "account": acct, "currency": "USD", "amount": "1000.5", "ts": ts})
        elif r < 0.95:
            out.append({"op": "advance", "ts": ts + S})
        elif r < 0.96:
            out.append({"op": "cancel_all", "account": acct, "ts": ts})
        elif r < 0.97:
            out.append({"op": "halt", "symbol": ETH, "ts": ts})
            out.append({"op": "resume", "symbol": ETH, "ts": ts})
        elif r < 0.98:
            # these raise (unknown symbol / limit) from inside the venue: journaled, replayed alike
            out.append({"op": "halt", "symbol": "NOPE-USD", "ts": ts})
            out.append({"op": "limit", "key": "nope", "value": "1", "ts": ts})
        else:
            out.append({"op": "cancel", "id": rng.choice(ids), "account": rng.choice(accounts), "ts": ts})
    return out


def venue_state(v: Venue) -> dict:
    return {
        "now": v.now,
        "last": dict(v.last),
        "halted": dict(v.halted),
        "kill": (v.kill_switch, getattr(v, "kill_reason", None)),
        "ids": (len(v._seen_ids), v._seq, v._trade_seq),  # engine counters: ids used, priority and trade seqs
        "resting": resting_dicts(v),
        "open": sorted((o.id, o.account, o.status.value, o.price, o.stop_price, o.qty, o.open_qty, o.filled_qty,
                        o.filled_cost, o.hold_price, o.triggered, o.seq) for o in v.orders.values()),
        "positions": {
            (a.id, s): (p.qty, p.cost, p.realized, p.fees, p.open_buy, p.open_sell)
            for a in v.accounts.values() for s, p in a.positions.items()
        },
        "wallets": {
            (a.id, c): (w.balance, w.reserved, w.margin) for a in v.accounts.values() for c, w in a.wallets.items()
        },
        "accounts": {
            a.id: (sorted(a.client_ids), a.rate_second, a.rate_count, a.loss_day, a.day_realized, a.reduce_only_open)
            for a in v.accounts.values()
        },
        "limits": v.limits.entries(),
        "breakers": {s: (b.halted_until, b.tripped_ns) for s, b in v.breakers.items()},
    }


def run_session(store: Store, cmds: list[dict], seed: int, snapshot_at: int | None) -> tuple[Venue, set[str]]:
    """Commit in random-size batches; returns the venue and every rejection reason seen."""
    rng = random.Random(seed)
    v = Venue()
    i = 0
    snapshotted = False
    reasons: set[str] = set()
    while i < len(cmds):
        size = rng.choice((1, 1, 2, 5, 17, 60))
        chunk = cmds[i:i + size]
        batch = applied(v, *chunk)
        reasons |= {f"{e.op}:{e.reason}" for _, evs in batch for e in evs if isinstance(e, OrderRejected)}
        seq = store.journal.commit(batch, v)
        i += len(chunk)
        assert seq == i
        if snapshot_at is not None and not snapshotted and i >= snapshot_at:
            store.journal.snapshot(seq, v)
            snapshotted = True
    return v, reasons


@pytest.mark.parametrize("snapshot_at", [None, 1_500, 10**9])
def test_recovery_reproduces_the_venue(tmp_path: Path, snapshot_at: int | None) -> None:
    cmds = random_stream(11, 3_000)
    path = tmp_path / "r.db"
    store = Store(path)
    original, reasons = run_session(store, cmds, 3, snapshot_at)
    fills = len(store.history.list_fills(limit=10**6)[0])
    assert fills > 200, "the stream should trade"
    assert {"new:rate_limit", "new:duplicate_order_id", "amend:order_closed", "cancel:unknown_order"} <= reasons
    stored = {r["reason"] for r in store.history.list_orders(statuses=["rejected"], limit=10**6)[0]}
    assert "rate_limit" in stored and "duplicate_order_id" not in stored  # never over the accepted order
    store.close()

    reopened = Store(path)
    recovered, last, replayed = reopened.journal.recover(Venue)
    assert last == len(cmds)
    if snapshot_at is None or snapshot_at > len(cmds):
        assert replayed == len(cmds)
    else:
        snaps = reopened.journal.snapshots()
        assert len(snaps) == 1 and snaps[0][0] >= snapshot_at
        assert replayed == len(cmds) - snaps[0][0]
    assert venue_state(recovered) == venue_state(original)

    # the projection agrees with the venue: open orders and fees per position
    open_rows = all_orders(reopened, statuses=["new", "partially_filled"])
    assert sorted(r["id"] for r in open_rows) == sorted(original.orders)
    for row in open_rows:
        o = original.orders[row["id"]]
        inst = original.instruments[o.symbol]
        assert (row["open_qty"], row["status"]) == (fmt(inst.qty(o.open_qty)), o.status.value)
    fees: dict[tuple[str, str], Decimal] = {}
    for f in reopened.history.list_fills(limit=10**6)[0]:
        fees[f["account"], f["symbol"]] = fees.get((f["account"], f["symbol"]), Decimal(0)) + Decimal(f["fee"])
    assert fees == {(a.id, s): from_cash(p.fees) for a in original.accounts.values()
                    for s, p in a.positions.items() if p.fees or (a.id, s) in fees}

    # both venues go on identically
    more = random_stream(12, 300)
    for cmd in more:
        cmd["ts"] = max(cmd["ts"], original.now)
        if cmd.get("op") == "new":
            cmd["id"] = "x" + cmd["id"]
    a = [[event_dict(original, e) for e in evs] for _, evs in applied(original, *more)]
    b = [[event_dict(recovered, e) for e in evs] for _, evs in applied(recovered, *more)]
    assert a == b
    assert venue_state(recovered) == venue_state(original)
    reopened.close()


def test_snapshot_round_trips_the_venue_and_replaces_older_ones(store: Store) -> None:
    v = Venue()
    cmds = random_stream(5, 400)
    store.journal.commit(applied(v, *cmds[:200]), v)
    store.journal.snapshot(100, Venue())  # an older, different state: replaced below
    store.journal.snapshot(200, v)
    assert [seq for seq, _ in store.journal.snapshots()] == [200]
    clone = pickle.loads(store.journal.snapshots()[0][1].read_bytes())
    assert venue_state(clone) == venue_state(v)
    # shared references survive: an open order's account is the account object in the venue
    for o in clone.orders.values():
        assert o.acct is clone.accounts[o.account] and o.pos is clone.accounts[o.account].positions[o.symbol]
    store.journal.commit(applied(v, *cmds[200:]), v)
    recovered, last, replayed = store.journal.recover(Venue)
    assert (last, replayed) == (len(cmds), len(cmds) - 200)
    assert venue_state(recovered) == venue_state(v)
    with pytest.raises(ValueError):
        store.journal.snapshot(len(cmds) + 1, v)


def test_a_snapshot_that_does_not_load_falls_back_to_the_whole_journal(store: Store) -> None:
    v = Venue()
    cmds = random_stream(6, 300)
    store.journal.commit(applied(v, *cmds), v)
    store.journal.snapshot(len(cmds), v)
    store.journal.snapshots()[0][1].write_bytes(pickle.dumps(v)[:-40])
    recovered, last, replayed = store.journal.recover(Venue)
    assert (last, replayed) == (len(cmds), len(cmds))
    assert venue_state(recovered) == venue_state(v)


# -- crash safety --------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tradsys.daemon.store import Store
    from tradsys.engine import OrderRejected, Venue
    from tradsys.engine.commands import apply

    store = Store(Path(sys.argv[1]))
    venue = Venue()
    n = 0
    for batch_no in range(1_000_000):
        batch = []
        for _ in range(20):
            n += 1
            side = "buy" if n % 2 else "sell"
            price = "100.%02d" % (n % 7 if side == "buy" else 3 + n % 7)
            cmd = {"op": "new", "id": str(n), "account": "a%d" % (n % 5), "symbol": "BTC-USD", "side": side,
                   "type": "limit", "price": price, "qty": "0.01", "ts": 1767600000000000000 + n}
            batch.append((cmd, apply(venue, cmd)))
        seq = store.journal.commit(batch, venue)
        print(seq, flush=True)
""")


def test_sigkill_loses_no_acknowledged_commit(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    acked: list[int] = []
    buf = b""
    deadline = time.monotonic() + 4.0
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while len(acked) < 8 and time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            acked += [int(x) for x in lines]
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=5)
    finally:
        sel.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    acked += [int(x) for x in (buf + rest).split(b"\n")[:-1]]  # a line without its newline was not acknowledged
    assert len(acked) >= 8, err.decode()[-2000:]
    assert acked == sorted(acked) and acked[0] == 20

    store = Store(path)
    assert store.db.execute_sql("PRAGMA integrity_check").fetchone()[0] == "ok"
    seqs = [r["seq"] for r in store.journal.entries()]
    assert set(acked) <= set(seqs)
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) % 20 == 0, "a batch is all or nothing"
    venue, last, replayed = store.journal.recover(Venue)
    assert last == replayed == len(seqs) == store.journal.last_seq
    # the orders table is exactly as durable as the journal
    assert sorted(r["id"] for r in all_orders(store, statuses=["new", "partially_filled"])) == sorted(venue.orders)
    assert store.db.execute_sql("SELECT count(*) FROM orders").fetchone()[0] == len(seqs)
    assert store.journal.commit(applied(venue, new("after", "buy", "0.01", "99", ts=venue.now)), venue) == len(seqs) + 1
    store.close()


# -- concurrency -----------------------------------------------------------------------------


def test_readers_on_other_threads_do_not_block_the_writer(store: Store) -> None:
    v = Venue()
    store.journal.commit(applied(v, new("1", "buy", "1", "100")), v)
    reading = threading.Event()
    written = threading.Event()
    seen: list = []

    def reader() -> None:
        try:
            with store.db.atomic():  # a long read transaction on this thread's own connection
                seen.append(len(store.history.list_orders()[0]))
                reading.set()
                seen.append(written.wait(10))
                seen.append(len(store.history.list_orders()[0]))  # still its snapshot
            seen.append(len(store.history.list_orders()[0]))
        finally:
            reading.set()
            store.close()

    t = threading.Thread(target=reader)
    t.start()
    assert reading.wait(10)
    store.journal.commit(applied(v, new("2", "buy", "1", "100", ts=T0 + 1)), v)  # must not wait for the reader
    written.set()
    t.join(10)
    assert seen == [1, True, 1, 2]


def test_many_readers_while_writing(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    v = Venue()
    stop = threading.Event()
    errors: list[BaseException] = []
    counts: list[list[int]] = [[] for _ in range(4)]

    def reader(k: int) -> None:
        try:
            while not stop.is_set():
                rows, _ = store.history.list_orders(account="a1", limit=1000)
                counts[k].append(len(rows))
                store.history.list_fills(account="a1")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for b in range(30):
            store.journal.commit(applied(v, *[new(f"{b}-{i}", "buy", "0.01", "90", ts=T0 + b) for i in range(10)]), v)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors
    for seq in counts:
        assert seq == sorted(seq)  # each reader sees a growing table: committed batches only
        assert all(c % 10 == 0 for c in seq)
    assert len(store.history.list_orders(account="a1", limit=1000)[0]) == 300
    store.close()


# -- history queries ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):
    """~600 orders over 4 accounts, 3 symbols and every status, many sharing a created_ns."""
    store = Store(tmp_path_factory.mktemp("hist") / "h.db")
    v = Venue()
    rng = random.Random(5)
    cmds = []
    ts = T0
    for i in range(600):
        ts += rng.choice((0, 0, 1, S))
        sym = rng.choice((BTC, ETH, SOL))
        side = rng.choice(("buy", "sell"))
        price = {BTC: 100, ETH: 50, SOL: 20}[sym] + rng.randint(-2, 2)
        cmd = new(str(i), side, rng.choice(("0.1", "0.2", "0.3")) if sym != SOL else "1", str(price), account=f"a{rng.randint(1, 4)}", symbol=sym,
                  ts=ts)
        if rng.random() < 0.05:
            cmd["price"] = "1.0001"
        if rng.random() < 0.1:
            cmd["tif"] = "IOC"
        cmds.append(cmd)
        if rng.random() < 0.15:
            cmds.append({"op": "cancel", "id": str(rng.randint(0, i)), "ts": ts})
    for i in range(0, len(cmds), 50):
        store.journal.commit(applied(v, *cmds[i:i + 50]), v)
    rows = [dict(zip([d[0] for d in cur.description], r)) for cur in
            [store.db.execute_sql("SELECT * FROM orders")] for r in cur.fetchall()]
    yield store, rows
    store.close()


FILTERS = [
    {},
    {"account": "a2"},
    {"account": "a3", "statuses": ["filled"]},
    {"account": "a1", "statuses": ["new", "partially_filled", "cancelled"]},
    {"symbol": ETH},
    {"symbol": SOL, "statuses": ["cancelled", "rejected"]},
    {"statuses": ["rejected"]},
    {"statuses": ["new", "filled"]},
    {"account": "a4", "symbol": BTC},
    {"since_ns": T0 + 100 * S, "until_ns": T0 + 200 * S},
    {"account": "a2", "since_ns": T0 + 50 * S},
    {"symbol": BTC, "until_ns": T0 + 150 * S, "statuses": ["filled", "cancelled"]},
    {"statuses": []},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[json.dumps(f, sort_keys=True) for f in FILTERS])
@pytest.mark.parametrize("page", [1, 7, 100, 1000])
def test_keyset_paging_returns_every_row_once(history, filters: dict, page: int) -> None:
    store, everything = history
    statuses = filters.get("statuses")
    want = [
        r for r in everything
        if (filters.get("account") in (None, r["account"]))
        and (filters.get("symbol") in (None, r["symbol"]))
        and (statuses is None or r["status"] in statuses)
        and (filters.get("since_ns") is None or r["created_ns"] >= filters["since_ns"])
        and (filters.get("until_ns") is None or r["created_ns"] < filters["until_ns"])
    ]
    want.sort(key=lambda r: (r["created_ns"], r["id"]), reverse=True)
    got, key, pages = [], None, 0
    while True:
        rows, key = store.history.list_orders(limit=page, before_key=key, **filters)
        assert len(rows) <= page
        assert key is None or len(rows) == page
        got += rows
        pages += 1
        if key is None:
            break
        key = json.loads(json.dumps(key))  # as a page token carries it
    assert [r["id"] for r in got] == [r["id"] for r in want]
    assert len({r["id"] for r in got}) == len(got)
    if filters != {"statuses": []}:
        assert len(want) > 0
    assert pages == max(1, -(-len(want) // page))  # no empty last page


def test_history_covers_every_status(history) -> None:
    _, rows = history
    assert {r["status"] for r in rows} == set(STATUSES) - {"expired"}
    assert len({r["created_ns"] for r in rows}) < len(rows) * 0.6, "many orders share a created_ns"


def test_fill_paging_and_filters(history) -> None:
    store, _ = history
    everything = store.db.execute_sql("SELECT id, ts, account, symbol, order_id FROM fills").fetchall()
    assert len(everything) > 50
    for filters in ({}, {"account": "a1"}, {"symbol": ETH}, {"since_ns": T0 + 100 * S, "until_ns": T0 + 300 * S},
                    {"order_id": everything[0][4]}):
        want = [r for r in everything
                if filters.get("account") in (None, r[2]) and filters.get("symbol") in (None, r[3])
                and filters.get("order_id") in (None, r[4])
                and (filters.get("since_ns") is None or filters["since_ns"] <= r[1] < filters["until_ns"])]
        want.sort(key=lambda r: (r[1], r[0]), reverse=True)
        got, key = [], None
        while True:
            rows, key = store.history.list_fills(limit=9, before_key=key, **filters)
            got += rows
            if key is None:
                break
        assert [r["id"] for r in got] == [r[0] for r in want] and want


# The planner must walk an index for every main shape: never a full SCAN of the table and never
# a sort of all matching rows (which is what made history slow on a million orders).
ORDER_PLANS = [
    ({"account": "a1", "statuses": ["filled"]}, "orderrow_account_status_created_ns_id"),
    ({"account": "a1"}, "orderrow_account_status_created_ns_id"),
    ({"account": "a1", "statuses": ["new", "partially_filled"], "since_ns": 1, "until_ns": 2},
     "orderrow_account_status_created_ns_id"),
    ({"account": "a1", "symbol": BTC}, "orderrow_account_status_created_ns_id"),
    ({"symbol": BTC}, "orderrow_symbol_created_ns_id"),
    ({"symbol": BTC, "since_ns": 1, "until_ns": 2}, "orderrow_symbol_created_ns_id"),
    ({"statuses": ["new"]}, "orderrow_status_created_ns_id"),
    ({"statuses": ["new", "filled"], "since_ns": 1}, "orderrow_status_created_ns_id"),
    ({"symbol": BTC, "statuses": ["filled", "cancelled"]}, "orderrow_"),  # symbol or status index: both ordered
    ({}, "orderrow_created_ns_id"),
    ({"since_ns": 1, "until_ns": 2}, "orderrow_created_ns_id"),
]
FILL_PLANS = [
    ({"account": "a1"}, "fillrow_account_ts"),
    ({"account": "a1", "since_ns": 1, "until_ns": 2}, "fillrow_account_ts"),
    ({"symbol": BTC, "since_ns": 1}, "fillrow_symbol_ts"),
    ({"order_id": "7"}, "fillrow_order_id_ts"),
    ({}, "fillrow_ts"),
]


def check_plan(plan: list[str], index: str, table: str) -> None:
    assert any(index in line for line in plan), plan
    assert not any(line.strip() == f"SCAN {table}" for line in plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan


@pytest.mark.parametrize("filters,index", ORDER_PLANS)
@pytest.mark.parametrize("paged", [False, True])
def test_order_queries_use_an_index(history, filters: dict, index: str, paged: bool) -> None:
    store, _ = history
    queries = store.history.order_queries(**filters, before_key=(T0, "5") if paged else None)
    assert queries
    for sql, params in queries:
        check_plan(store.history.explain(sql, params), index, "orders")


@pytest.mark.parametrize("filters,index", FILL_PLANS)
@pytest.mark.parametrize("paged", [False, True])
def test_fill_queries_use_an_index(history, filters: dict, index: str, paged: bool) -> None:
    store, _ = history
    sql, params = store.history.fill_query(**filters, before_key=(T0, 5) if paged else None)
    check_plan(store.history.explain(sql, params), index, "fills")


def test_get_order_and_next_order_number_use_the_primary_key(history) -> None:
    store, _ = history
    plan = store.history.explain("SELECT * FROM orders WHERE id = ?", ("5",))
    assert any("sqlite_autoindex_orders_1" in line for line in plan), plan
    assert store.journal.next_order_number() == 600


# -- other tables ------------------------------------------------------------------------------


def test_risk_limits_strategies_alerts(store: Store) -> None:
    store.settings.set_risk_limit("max_position", Decimal("2.5"), account="a1", symbol=BTC, updated_ns=5)
    store.settings.set_risk_limit("price_band_pct", "3")
    store.settings.set_risk_limit("max_position", None, account="a1", symbol=BTC, updated_ns=6)
    assert store.settings.list_risk_limits() == [
        {"account": None, "symbol": None, "key": "price_band_pct", "value": "3", "updated_ns": 0},
        {"account": "a1", "symbol": BTC, "key": "max_position", "value": None, "updated_ns": 6},
    ]
    assert store.settings.delete_risk_limit("price_band_pct") and not store.settings.delete_risk_limit("price_band_pct")

    store.settings.upsert_strategy("s1", "grid", {"levels": 5, "step": Decimal("0.5")}, "stopped", account="a1", ts=10)
    store.settings.upsert_strategy("s1", "grid", {"levels": 6}, "running", account="a1", ts=20)
    assert store.settings.get_strategy("s1") == {"id": "s1", "kind": "grid", "params": {"levels": 6}, "account": "a1",
                                        "state": "running", "created_ns": 10, "updated_ns": 20}
    store.settings.upsert_strategy("s2", "twap", {"qty": "1"}, "stopped", ts=30)
    assert [s["id"] for s in store.settings.list_strategies()] == ["s1", "s2"]
    assert [s["id"] for s in store.settings.list_strategies(account="a1", state="running")] == ["s1"]
    assert store.settings.delete_strategy("s2") and store.settings.get_strategy("s2") is None

    store.settings.upsert_alert("al1", "engine_lag", "warning", "firing", 100, labels={"symbol": BTC}, summary="slow")
    assert store.settings.ack_alert("al1")
    store.settings.upsert_alert("al1", "engine_lag", "warning", "resolved", 100, labels={"symbol": BTC}, resolved_ns=200)
    store.settings.upsert_alert("al2", "drawdown", "critical", "firing", 150)
    alerts = store.settings.list_alerts()
    assert [a["id"] for a in alerts] == ["al2", "al1"]
    assert (alerts[1]["state"], alerts[1]["resolved_ns"], alerts[1]["acked"], alerts[1]["labels"]) == (
        "resolved", 200, True, {"symbol": BTC})
    assert [a["id"] for a in store.settings.list_alerts(state="firing")] == ["al2"]


# -- decimal text ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(n=st.integers(-10**15, 10**15), unit=st.sampled_from(["0.01", "0.001", "0.25", "1", "5", "1E+1", "0.00000001",
                                                              "2.5E-7"]))
def test_fast_decimal_text_matches_fmt(n: int, unit: str) -> None:
    assert _scaler(Decimal(unit))(n) == fmt(n * Decimal(unit))


def test_cash_text() -> None:
    assert [CASH(x) for x in (0, 1, 1_500_150, -300_030, 100_000_000, 12_345_678_900)] == [
        "0", "0.00000001", "0.0150015", "-0.0030003", "1", "123.456789"]


def test_the_engine_snapshots_from_a_forked_child_while_it_keeps_going(tmp_path: Path) -> None:
    from tradsys.daemon.core import Core

    store = Store(tmp_path / "c.db")
    core = Core(Venue(), store.journal, snapshot_every=400)
    core.start()
    try:
        cmds = random_stream(21, 2_001)
        for i in range(0, 2_000, 40):
            core.execute(cmds[i:i + 40])
        for _ in range(3_000):  # until the last child is reaped and no snapshot is due (read on the engine thread)
            if core.query(lambda _venue: core._snapshotter is None and core._since_snapshot < 400):
                break
            time.sleep(0.01)
        (seq, path), = store.journal.snapshots()
        forked = path.read_bytes()
        # A child forked late (its turn came once the one before it was reaped) may cover every
        # command so far; one more makes the journal end after any child's snapshot.
        core.execute(cmds[2_000:])
    finally:
        core.stop()
    last = store.journal.last_seq
    assert 400 <= seq < last, "taken by a child while running, not by the stop"
    assert [s for s, _ in store.journal.snapshots()] == [last], "the stop's snapshot replaced it"
    # recovery from the child's snapshot plus the journal after it is the engine's venue
    store.journal.snapshots()[0][1].unlink()
    (store.journal.snapshot_dir / path.name).write_bytes(forked)
    recovered, recovered_last, replayed = Store(tmp_path / "c.db").journal.recover(Venue)
    assert (recovered_last, replayed) == (last, last - seq)
    # `now` aside: the engine's idle clock ticks move it without a journal row
    assert {**venue_state(recovered), "now": 0} == {**venue_state(core.venue), "now": 0}


def test_a_snapshot_past_the_journal_is_dropped(store: Store) -> None:
    v = Venue()
    cmds = random_stream(7, 100)
    store.journal.commit(applied(v, *cmds), v)
    store.journal.snapshot(len(cmds), v)
    name = store.journal.snapshots()[0][1].name
    (store.journal.snapshot_dir / name).rename(store.journal.snapshot_dir / f"{len(cmds) + 50:020d}.pickle")
    recovered, last, replayed = store.journal.recover(Venue)
    assert (last, replayed) == (len(cmds), len(cmds)), "a history the journal no longer has is not used"
    assert store.journal.snapshots() == []
    assert venue_state(recovered) == venue_state(v)
