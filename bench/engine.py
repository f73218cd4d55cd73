"""Engine throughput: a seeded, realistic command stream through the venue with risk on.

About 55 % passive adds, 30 % cancels (mostly of recent orders) and 15 % crossing orders
(marketable limits and market orders) from 50 accounts on BTC-USD, one command per simulated
millisecond. Order construction is part of each command's cost; the garbage collector is off
during the timed loop, or with --gc on at the given thresholds after `gc.freeze()`, as a daemon
runs it.

    python bench/engine.py [--commands 1000000] [--seed 7] [--gc 100000,50,100]
"""

import argparse
import gc
import platform
import random
import time
from decimal import Decimal

from tradsys.engine import COMPILED, OrderType, Side, TimeInForce, Venue, VenueConfig, new_order

MS = 1_000_000
MARKET, IOC, GTC = OrderType.MARKET, TimeInForce.IOC, TimeInForce.GTC


def stream(n: int, seed: int) -> list[tuple]:
    """Commands as plain tuples so that generating them is not part of the measurement.

    The generator keeps a venue of its own to see the real touch: passive orders really rest
    (at or behind the best price on their side), crossing orders really cross. Replaying the
    same commands into a fresh venue reproduces that book path exactly.
    """
    rng = random.Random(seed)
    shadow = Venue(config=VenueConfig(initial_balances={"USD": Decimal(10**9)}))
    book = shadow.books["BTC-USD"]
    mid = 6_000_000  # 60,000.00 in ticks of 0.01
    live: list[str] = []
    out: list[tuple] = []
    for i in range(n):
        ts = (i + 1) * MS
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            mid = (bid + ask) // 2
        account = f"acct{rng.randrange(50)}"
        r = rng.random()
        if r < 0.55 or not live:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            offset = int(rng.expovariate(1 / 6))
            if side is Side.BUY:
                price = (bid if bid is not None else mid - 1) - offset
                if ask is not None:
                    price = min(price, ask - 1)
            else:
                price = (ask if ask is not None else mid + 1) + offset
                if bid is not None:
                    price = max(price, bid + 1)
            cmd = ("new", f"o{i}", account, side, OrderType.LIMIT, price, 1 + rng.randrange(100), ts)
            live.append(cmd[1])
        elif r < 0.85:
            j = rng.randrange(max(0, len(live) - 2000), len(live))
            live[j], live[-1] = live[-1], live[j]
            cmd = ("cancel", live.pop(), ts)
        else:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            qty = 1 + rng.randrange(100)
            if rng.random() < 0.3:
                cmd = ("new", f"o{i}", account, side, MARKET, None, qty, ts)
            else:
                price = (ask if ask is not None else mid) + 2 if side is Side.BUY else (bid if bid is not None else mid) - 2
                cmd = ("new", f"o{i}", account, side, OrderType.LIMIT, price, qty, ts)
        apply(shadow, cmd)
        out.append(cmd)
    return out


def apply(venue: Venue, cmd: tuple) -> None:
    if cmd[0] == "new":
        _, oid, account, side, otype, price, qty, ts = cmd
        tif = IOC if otype is MARKET else GTC
        venue.place(new_order(oid, account, "BTC-USD", side, otype, qty, price, None, tif, False, False, None, None, ts))
    else:
        venue.cancel(cmd[1], cmd[2])


def run(commands: list[tuple], timed: bool, gc_thresholds: tuple[int, ...] | None) -> tuple[float, list[int], Venue]:
    venue = Venue(config=VenueConfig(initial_balances={"USD": Decimal(10**9)}))
    latencies: list[int] = []
    clock = time.perf_counter_ns
    defaults = gc.get_threshold()
    if gc_thresholds is None:
        gc.disable()
    else:
        gc.freeze()
        gc.set_threshold(*gc_thresholds)
    start = time.perf_counter()
    for cmd in commands:
        t0 = clock() if timed else 0
        apply(venue, cmd)
        if timed:
            latencies.append(clock() - t0)
    elapsed = time.perf_counter() - start
    gc.enable()
    gc.set_threshold(*defaults)
    gc.unfreeze()
    return elapsed, latencies, venue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gc", metavar="THRESHOLDS", help="collector on at these gen0,gen1,gen2 thresholds (default: off)")
    args = parser.parse_args()
    thresholds = tuple(int(n) for n in args.gc.split(",")) if args.gc else None
    commands = stream(args.commands, args.seed)
    elapsed, _, venue = run(commands, timed=False, gc_thresholds=thresholds)
    _, latencies, _ = run(commands, timed=True, gc_thresholds=thresholds)
    latencies.sort()
    fills = venue._trade_seq
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"engine: {'compiled with mypyc' if COMPILED else 'plain Python (TRADSYS_PURE, or not installed)'}")
    print(f"commands: {len(commands):,}  fills: {fills:,}  open orders at end: {len(venue.orders):,}")
    gc_mode = f"gc {args.gc}" if thresholds else "gc off"
    print(f"throughput: {len(commands) / elapsed:,.0f} commands/s (risk on, {gc_mode}, {elapsed:.2f} s)")
    print(f"latency: p50 {latencies[len(latencies) // 2] / 1000:.2f} us  p99 {latencies[int(len(latencies) * 0.99)] / 1000:.2f} us")


if __name__ == "__main__":
    main()
