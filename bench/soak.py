"""Soak: the daemon with the simulated market, live strategies and clients for a while; memory must stay flat.

    python bench/soak.py                  # 3 minutes
    python bench/soak.py --seconds 1800   # half an hour

Runs a real daemon in a temporary home (loopback only), starts two built-in strategies, and drives:
order-entry streams (place then cancel, so the book stays bounded), a unary client whose
acknowledgement times give the p99, and WebSocket subscribers to books, trades and order events.
Every `--sample` seconds it prints the daemon's RSS and the event rates; at the end, RSS growth
from the first sample after warm-up to the last, and a verdict (flat = under `--max-growth-mb`).
"""

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import DaemonProcess, eventually, start_daemon  # noqa: E402
from tradsys.proto import common_pb2 as common  # noqa: E402
from tradsys.proto import orders_pb2 as pb  # noqa: E402
from tradsys.proto import orders_pb2_grpc as pb_grpc  # noqa: E402
from tradsys.proto import strategy_pb2 as spb  # noqa: E402
from tradsys.proto import strategy_pb2_grpc as spb_grpc  # noqa: E402

CONFIG = "[ws]\nrate = 100000\nburst = 100000\nflood_close = 100000\n"


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.placed = 0
        self.ws_messages = 0
        self.errors = 0
        self.latencies: list[float] = []

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stream_client(d: DaemonProcess, c: Counters, stop: threading.Event, tag: str, rate: int) -> None:
    """Places 50-order batches at about `rate` orders/s, then cancels what rested."""
    rng = random.Random(tag)
    stub = pb_grpc.OrderServiceStub(d.channel())
    resting: list[str] = []

    def batches():  # type: ignore[no-untyped-def]
        seq = 0
        while not stop.is_set():
            seq += 1
            reqs = [pb.OrderRequest(cancel=pb.CancelOrderRequest(order_id=oid)) for oid in resting[:50]]
            del resting[:50]
            reqs += [pb.OrderRequest(place=pb.PlaceOrderRequest(
                account=f"{tag}-{i % 4}", symbol="ETH-USD", side=rng.choice((common.SIDE_BUY, common.SIDE_SELL)),
                type=common.ORDER_TYPE_MARKET if i % 10 == 0 else common.ORDER_TYPE_LIMIT,
                price="" if i % 10 == 0 else f"{rng.choice((2900, 3100))}.00", qty="0.01")) for i in range(50)]
            yield pb.OrderBatch(seq=seq, requests=reqs)
            time.sleep(50 / rate)

    try:
        for ack in stub.OrderEntry(batches(), metadata=d.metadata()):
            for r in ack.results:
                if r.status == common.ORDER_STATUS_NEW:
                    resting.append(r.order_id)
            c.add(placed=len(ack.results), errors=sum(1 for r in ack.results if r.error.code))
    except grpc.RpcError:
        if not stop.is_set():
            raise


def unary_client(d: DaemonProcess, c: Counters, stop: threading.Event) -> None:
    stub = pb_grpc.OrderServiceStub(d.channel())
    while not stop.is_set():
        start = time.perf_counter()
        reply = stub.PlaceOrder(pb.PlaceOrderRequest(account="lat", symbol="BTC-USD", side=common.SIDE_BUY,
                                                     type=common.ORDER_TYPE_MARKET, qty="0.001"),
                                metadata=d.metadata(), timeout=10)
        with c.lock:
            c.latencies.append(time.perf_counter() - start)
        c.add(placed=1)
        if reply.order.order_id:
            stub.PlaceOrder(pb.PlaceOrderRequest(account="lat", symbol="BTC-USD", side=common.SIDE_SELL,
                                                 type=common.ORDER_TYPE_MARKET, qty="0.001"), metadata=d.metadata())
        time.sleep(0.02)


def ws_client(d: DaemonProcess, c: Counters, stop: threading.Event) -> None:
    from websockets.asyncio.client import connect

    async def main() -> None:
        async with connect(f"ws://{d.http}/ws?token={d.admin_token()}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "channels": [
                "book:BTC-USD", "book:ETH-USD", "trades:BTC-USD", "trades:ETH-USD", "orders", "bars:BTC-USD:1s"]}))
            while not stop.is_set():
                msg = json.loads(await ws.recv())
                c.add(ws_messages=len(msg["items"]) if msg.get("type") == "batch" else 1)

    asyncio.run(main())


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)] if values else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--sample", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=30, help="seconds before the RSS baseline is taken")
    parser.add_argument("--rate", type=int, default=500, help="orders/s per order-entry stream")
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--ws-clients", type=int, default=4)
    parser.add_argument("--max-growth-mb", type=float, default=20)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="tradsys-soak-"))
    (home / "config.toml").write_text(CONFIG)
    d = start_daemon(home, "--seed", "9", "--durability", "process")
    c = Counters()
    stop = threading.Event()
    try:
        strategies = spb_grpc.StrategyServiceStub(d.channel())
        for kind, symbol in (("market_making", "SOL-USD"), ("sma_cross", "BTC-USD")):
            try:
                strategies.StartStrategy(spb.StartStrategyRequest(kind=kind, account=f"strat-{kind}", symbols=[symbol]),
                                         metadata=d.metadata())
            except grpc.RpcError as exc:
                print(f"strategy {kind} not started: {exc.details()}")
        threads = [threading.Thread(target=stream_client, args=(d, c, stop, f"s{i}", args.rate), daemon=True)
                   for i in range(args.streams)]
        threads += [threading.Thread(target=unary_client, args=(d, c, stop), daemon=True)]
        threads += [threading.Thread(target=ws_client, args=(d, c, stop), daemon=True) for _ in range(args.ws_clients)]
        for t in threads:
            t.start()
        start = time.monotonic()
        samples: list[tuple[float, float]] = []
        last = (start, 0, 0)
        print(f"{'t (s)':>6} {'RSS MB':>8} {'orders/s':>9} {'ws msg/s':>9} {'p99 ack ms':>10} {'errors':>7}")
        while time.monotonic() - start < args.seconds:
            time.sleep(args.sample)
            if d.proc.poll() is not None:
                print("the daemon died", file=sys.stderr)
                return 1
            now = time.monotonic()
            with c.lock:
                placed, msgs, lat, c.latencies = c.placed, c.ws_messages, c.latencies, []
            rss = rss_mb(d.proc.pid)
            samples.append((now - start, rss))
            dt = now - last[0]
            print(f"{now - start:6.0f} {rss:8.1f} {(placed - last[1]) / dt:9.0f} {(msgs - last[2]) / dt:9.0f} "
                  f"{p99(lat) * 1000:10.2f} {c.errors:7d}", flush=True)
            last = (now, placed, msgs)
        after_warmup = [s for s in samples if s[0] >= args.warmup] or samples
        growth = after_warmup[-1][1] - after_warmup[0][1]
        print(f"\norders {c.placed}, ws messages {c.ws_messages}, RSS {after_warmup[0][1]:.1f} -> "
              f"{after_warmup[-1][1]:.1f} MB after warm-up (growth {growth:+.1f} MB, limit {args.max_growth_mb} MB)")
        flat = growth <= args.max_growth_mb
        print("memory: flat" if flat else "memory: GROWING")
        return 0 if flat else 1
    finally:
        stop.set()
        if d.proc.poll() is None:
            d.kill(signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
