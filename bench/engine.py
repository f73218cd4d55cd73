"""Engine throughput: a seeded, realistic command stream through the venue with risk on.

About 55 % passive adds, 30 % cancels and 15 % crossing orders (marketable limits and market
orders) from 50 accounts on BTC-USD, one command per simulated millisecond.

    python bench/engine.py [--commands 1000000] [--seed 7]
"""

import argparse
import gc
import platform
import random
import time
from decimal import Decimal

from tradsys.engine import Order, OrderType, Side, TimeInForce, Venue, VenueConfig

MS = 1_000_000
MARKET, IOC, GTC = OrderType.MARKET, TimeInForce.IOC, TimeInForce.GTC


def stream(n: int, seed: int) -> list[tuple]:
    """Commands as plain tuples so that generating them is not part of the measurement."""
    rng = random.Random(seed)
    mid = 6_000_000  # 60,000.00 in ticks of 0.01
    live: list[str] = []
    out: list[tuple] = []
    for i in range(n):
        ts = (i + 1) * MS
        if rng.random() < 0.05:
            mid += 1 if rng.random() < 0.5 else -1
        account = f"acct{rng.randrange(50)}"
        r = rng.random()
        if r < 0.55 or not live:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            offset = 1 + int(rng.expovariate(1 / 8))
            price = mid - offset if side is Side.BUY else mid + offset
            oid = f"o{i}"
            live.append(oid)
            out.append(("new", oid, account, side, OrderType.LIMIT, price, 1 + rng.randrange(100), ts))
        elif r < 0.85:
            j = rng.randrange(max(0, len(live) - 2000), len(live))
            live[j], live[-1] = live[-1], live[j]
            out.append(("cancel", live.pop(), ts))
        else:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            qty = 1 + rng.randrange(150)
            if rng.random() < 0.3:
                out.append(("new", f"o{i}", account, side, OrderType.MARKET, None, qty, ts))
            else:
                price = mid + 3 if side is Side.BUY else mid - 3
                out.append(("new", f"o{i}", account, side, OrderType.LIMIT, price, qty, ts))
    return out


def run(commands: list[tuple], timed: bool) -> tuple[float, list[int], Venue]:
    venue = Venue(config=VenueConfig(initial_balances={"USD": Decimal(10**9)}))
    place, cancel = venue.place, venue.cancel
    latencies: list[int] = []
    clock = time.perf_counter_ns
    gc.disable()
    start = time.perf_counter()
    for cmd in commands:
        t0 = clock() if timed else 0
        if cmd[0] == "new":
            _, oid, account, side, otype, price, qty, ts = cmd
            tif = IOC if otype is MARKET else GTC
            place(Order(oid, account, "BTC-USD", side, otype, qty, price, None, tif, False, False, None, None, ts))
        else:
            cancel(cmd[1], cmd[2])
        if timed:
            latencies.append(clock() - t0)
    elapsed = time.perf_counter() - start
    gc.enable()
    return elapsed, latencies, venue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    commands = stream(args.commands, args.seed)
    elapsed, _, venue = run(commands, timed=False)
    _, latencies, _ = run(commands, timed=True)
    latencies.sort()
    fills = venue._trade_seq
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"commands: {len(commands):,}  fills: {fills:,}  open orders at end: {len(venue.orders):,}")
    print(f"throughput: {len(commands) / elapsed:,.0f} commands/s (risk on, {elapsed:.2f} s)")
    print(f"latency: p50 {latencies[len(latencies) // 2] / 1000:.2f} us  p99 {latencies[int(len(latencies) * 0.99)] / 1000:.2f} us")


if __name__ == "__main__":
    main()
