"""Store throughput and history-query latency on a real SQLite file (WAL, synchronous=FULL).

1. Group commit: new-order commands, each with its OrderAccepted event, committed in batches of
   1, 10, 100 and 1000; prints orders/s and commit latency p50/p99.
2. Mixed flow: a realistic command stream (adds, cancels, crossing orders with fills) through a
   real Venue, committed in batches; engine vs store time, then snapshot and recovery cost.
3. History: fills a fresh database with a million orders (fast path, batches of 5000) spread
   over accounts, symbols and statuses, then times the CLI's main list_orders shapes.

    python bench/store.py [--orders 20000] [--mixed 100000] [--history 1000000] [--dir /path/on/the/disk]
"""

import argparse
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from tradsys.daemon.store import Store
from tradsys.engine import Order, OrderAccepted, OrderStatus, OrderType, Side, TimeInForce, Venue

T0 = 1_767_600_000_000_000_000
STATUS_MIX = (
    (OrderStatus.FILLED, 0.45), (OrderStatus.CANCELLED, 0.35), (OrderStatus.NEW, 0.1),
    (OrderStatus.PARTIALLY_FILLED, 0.05), (OrderStatus.EXPIRED, 0.03), (OrderStatus.REJECTED, 0.02),
)


def new_orders(venue: Venue, start: int, n: int, rng: random.Random, accounts: int = 50,
               statuses: bool = False) -> list[tuple[dict, list]]:
    """`n` (command, [OrderAccepted]) pairs as the engine thread would hand them to commit."""
    symbols = list(venue.instruments)
    weights = [w for _, w in STATUS_MIX]
    out = []
    for i in range(start, start + n):
        symbol = symbols[i % len(symbols)]
        inst = venue.instruments[symbol]
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        price = 6_000_000 + rng.randrange(-5000, 5000)
        lots = 1 + rng.randrange(5000)
        ts = T0 + i * 1000
        oid = str(i + 1)
        account = f"acct{rng.randrange(accounts)}"
        cmd = {"op": "new", "id": oid, "account": account, "symbol": symbol, "side": side.value, "type": "limit",
               "price": str(inst.price(price)), "qty": str(inst.qty(lots)), "tif": "GTC", "ts": ts}
        order = Order(oid, account, symbol, side, OrderType.LIMIT, lots, price=price, tif=TimeInForce.GTC, ts=ts)
        if statuses:
            status = rng.choices(STATUS_MIX, weights)[0][0]
            order.status = status
            if status in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED):
                filled = lots if status is OrderStatus.FILLED else lots // 2 or 1
                order.filled_qty, order.filled_cost, order.open_qty = filled, filled * price, lots - filled
            elif status is not OrderStatus.NEW:
                order.open_qty = 0
        out.append((cmd, [OrderAccepted(ts, order)]))
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def group_commit(directory: Path, total: int, seed: int) -> None:
    venue = Venue()
    print(f"group commit, {total:,} new orders per batch size (journal row + order row each)")
    print(f"{'batch':>6} {'orders/s':>10} {'commits/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for size in (1, 10, 100, 1000):
        path = directory / f"commit-{size}.db"
        store = Store(path)
        rng = random.Random(seed)
        n = min(total, 2000 * size) if size < 10 else total
        n = max(size, n - n % size)
        batches = [new_orders(venue, i, size, rng) for i in range(0, n, size)]
        lat = []
        start = time.perf_counter()
        for batch in batches:
            t = time.perf_counter()
            store.journal.commit(batch, venue)
            lat.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - start
        print(f"{size:>6} {n / elapsed:>10,.0f} {len(batches) / elapsed:>10,.0f} "
              f"{pct(lat, 0.5) * 1e3:>8.2f} {pct(lat, 0.99) * 1e3:>8.2f}")
        store.close()


def mixed_stream(n: int, seed: int) -> list[dict]:
    """About 55 % passive adds, 30 % cancels and 15 % crossing orders from 50 accounts on
    BTC-USD, one command per simulated millisecond (the mix of bench/engine.py)."""
    rng = random.Random(seed)
    mid = 6_000_000
    live: list[str] = []
    out = []
    for i in range(n):
        ts = T0 + (i + 1) * 1_000_000
        if rng.random() < 0.05:
            mid += 1 if rng.random() < 0.5 else -1
        account = f"acct{rng.randrange(50)}"
        r = rng.random()
        if r < 0.55 or not live:
            side = "buy" if rng.random() < 0.5 else "sell"
            offset = 1 + int(rng.expovariate(1 / 8))
            price = mid - offset if side == "buy" else mid + offset
            live.append(str(i + 1))
            out.append({"op": "new", "id": str(i + 1), "account": account, "symbol": "BTC-USD", "side": side,
                        "type": "limit", "price": f"{price // 100}.{price % 100:02d}",
                        "qty": f"0.{1 + rng.randrange(100):03d}", "ts": ts})
        elif r < 0.85:
            oid = live.pop(rng.randrange(len(live)))
            out.append({"op": "cancel", "id": oid, "ts": ts})
        else:
            side = "buy" if rng.random() < 0.5 else "sell"
            cmd = {"op": "new", "id": str(i + 1), "account": account, "symbol": "BTC-USD", "side": side,
                   "qty": f"0.{1 + rng.randrange(200):03d}", "ts": ts}
            if rng.random() < 0.5:
                cmd |= {"type": "market"}
            else:
                price = mid + 20 if side == "buy" else mid - 20
                cmd |= {"type": "limit", "price": f"{price // 100}.{price % 100:02d}", "tif": "IOC"}
            out.append(cmd)
    return out


def mixed(directory: Path, n: int, seed: int) -> None:
    from tradsys.engine.commands import apply

    cmds = mixed_stream(n, seed)
    print(f"\nmixed flow: {n:,} commands through a Venue (adds 55 %, cancels 30 %, crossing 15 %)")
    print(f"{'batch':>6} {'cmds/s':>9} {'engine us/cmd':>14} {'store us/cmd':>13} {'fills':>8} {'p99 commit ms':>14}")
    for size in (100, 1000):
        store = Store(directory / f"mixed-{size}.db")
        venue = Venue()
        engine = commit = 0.0
        lat = []
        fills = 0
        for i in range(0, n, size):
            t = time.perf_counter()
            batch = [(cmd, apply(venue, cmd)) for cmd in cmds[i:i + size]]
            t2 = time.perf_counter()
            store.journal.commit(batch, venue)
            t3 = time.perf_counter()
            engine += t2 - t
            commit += t3 - t2
            lat.append(t3 - t2)
            fills += sum(1 for _, evs in batch for e in evs if type(e).__name__ == "OrderFilled")
        print(f"{size:>6} {n / (engine + commit):>9,.0f} {engine / n * 1e6:>14.1f} {commit / n * 1e6:>13.1f} "
              f"{fills:>8,} {pct(lat, 0.99) * 1e3:>14.2f}")
    t = time.perf_counter()
    store.journal.snapshot(store.journal.last_seq, venue)
    snap = time.perf_counter() - t
    (_, snap_file), = store.journal.snapshots()
    blob = snap_file.stat().st_size
    print(f"snapshot of that venue ({len(venue.orders):,} open orders): {snap * 1e3:.0f} ms, {blob / 2**20:.1f} MiB")
    t = time.perf_counter()
    child = store.journal.snapshot_in_child(store.journal.last_seq, venue)
    forked = time.perf_counter() - t
    os.waitpid(child, 0)
    print(f"the same snapshot from a forked child: the engine pauses {forked * 1e3:.1f} ms (the fork), "
          f"the child takes {(time.perf_counter() - t) * 1e3:.0f} ms")
    snap_file.unlink()
    t = time.perf_counter()
    _, last, replayed = store.journal.recover(Venue)
    rec = time.perf_counter() - t
    print(f"recovery without a snapshot: {replayed:,} commands replayed in {rec:.2f} s ({replayed / rec:,.0f}/s)")
    store.close()


def history(directory: Path, rows: int, seed: int) -> None:
    venue = Venue()
    path = directory / "history.db"
    store = Store(path)
    rng = random.Random(seed)
    batch = 5000
    start = time.perf_counter()
    for i in range(0, rows, batch):
        store.journal.commit(new_orders(venue, i, min(batch, rows - i), rng, accounts=1000, statuses=True), venue)
    elapsed = time.perf_counter() - start
    size = sum(f.stat().st_size for f in directory.glob("history.db*"))
    print(f"\nhistory: {rows:,} orders inserted in {elapsed:.1f} s ({rows / elapsed:,.0f}/s), "
          f"{size / 2**20:,.0f} MiB on disk")
    mid = T0 + rows // 2 * 1000
    shapes = [
        ("account + status=filled, first page", dict(account="acct7", statuses=["filled"])),
        ("account, any status, first page", dict(account="acct7")),
        ("account + open statuses", dict(account="acct7", statuses=["new", "partially_filled"])),
        ("symbol + 1 s time range", dict(symbol="ETH-USD", since_ns=mid, until_ns=mid + 10**9)),
        ("symbol, first page", dict(symbol="SOL-USD")),
        ("symbol + status=cancelled", dict(symbol="BTC-USD", statuses=["cancelled"])),
        ("status=new, first page", dict(statuses=["new"])),
        ("everything, first page", dict()),
    ]
    print(f"{'query (limit 100)':<40} {'first ms':>9} {'warm ms':>8} {'deep page ms':>13}")
    for name, kwargs in shapes:
        t = time.perf_counter()
        page, key = store.history.list_orders(**kwargs)
        first = time.perf_counter() - t
        warm = []
        for _ in range(20):
            t = time.perf_counter()
            store.history.list_orders(**kwargs)
            warm.append(time.perf_counter() - t)
        # keyset paging: time the last page reached within 50
        depth, deep = 1, first
        while key is not None and depth < 50:
            t = time.perf_counter()
            page, key = store.history.list_orders(before_key=key, **kwargs)
            deep = time.perf_counter() - t
            depth += 1
        print(f"{name:<40} {first * 1e3:>9.2f} {statistics.median(warm) * 1e3:>8.2f} "
              f"{deep * 1e3:>8.2f} (#{depth})")
    t = time.perf_counter()
    fills, _ = store.history.list_fills(account="acct7")
    print(f"{'fills by account (empty table)':<40} {(time.perf_counter() - t) * 1e3:>9.2f}")
    t = time.perf_counter()
    n = store.journal.next_order_number()
    print(f"next_order_number() = {n:,} in {(time.perf_counter() - t) * 1e3:.0f} ms")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000, help="new orders per batch size")
    parser.add_argument("--mixed", type=int, default=100_000, help="commands in the mixed flow (0: skip)")
    parser.add_argument("--history", type=int, default=1_000_000, help="orders for the query check (0: skip)")
    parser.add_argument("--dir", type=Path, default=None, help="where to create the databases (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cpus")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        print(f"databases in {directory} (WAL, synchronous=FULL)\n")
        group_commit(directory, args.orders, args.seed)
        if args.mixed:
            mixed(directory, args.mixed, args.seed)
        if args.history:
            history(directory, args.history, args.seed)


if __name__ == "__main__":
    main()
