"""Clients for capacity measurements, each in a process of its own so that a client's work does not
share an interpreter lock with the measurement: `Holder` keeps N gRPC streams open and counts what
they receive; `Caller` times unary PlaceOrder and GetBook round trips, one block per request.
Used by tests/daemon/test_capacity.py and bench/capacity.py.
"""

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import DaemonProcess

HOLDER = r'''
import asyncio, sys, time
import grpc
from tradsys.proto import marketdata_pb2 as md, marketdata_pb2_grpc as md_grpc

async def main(target, token, n):
    symbols = ("BTC-USD", "ETH-USD", "SOL-USD")
    received, opened, refused = [0], [0], []
    everyone = asyncio.Event()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = md_grpc.MarketDataServiceStub(channel)
        meta = (("authorization", f"Bearer {token}"),)

        async def follow(i):
            call = stub.StreamBook(md.StreamBookRequest(symbol=symbols[i % 3], depth=1), metadata=meta)
            first = True
            try:
                async for _ in call:
                    received[0] += 1
                    if first:
                        first = False
                        opened[0] += 1
                        if opened[0] + len(refused) == n:
                            everyone.set()
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.CANCELLED:
                    refused.append(f"{exc.code().name}: {exc.details()}")
                    if opened[0] + len(refused) == n:
                        everyone.set()

        tasks = [asyncio.create_task(follow(i)) for i in range(n)]
        if n:
            try:
                await asyncio.wait_for(everyone.wait(), 120)   # each stream has its snapshot, or was refused
            except TimeoutError:
                pass   # reported as fewer opened than asked
        print(f"open {opened[0]}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)   # measure: count from here
        start, first = time.monotonic(), received[0]
        await loop.run_in_executor(None, sys.stdin.readline)   # stop
        rate = (received[0] - first) / (time.monotonic() - start)
        print(f"{rate:.0f} {len(refused)} {refused[:1]}", flush=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
'''

CALLER = r'''
import sys, time
import grpc
from tradsys.proto import common_pb2 as common, marketdata_pb2 as md, marketdata_pb2_grpc as md_grpc
from tradsys.proto import orders_pb2 as pb, orders_pb2_grpc as pb_grpc

target, token, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
meta = (("authorization", f"Bearer {token}"),)
channel = grpc.insecure_channel(target)
orders, market = pb_grpc.OrderServiceStub(channel), md_grpc.MarketDataServiceStub(channel)
book = md.GetBookRequest(symbol="BTC-USD", depth=10)
for _ in range(50):
    market.GetBook(book, metadata=meta)
for line in sys.stdin:
    bid = float(market.GetBook(book, metadata=meta).book.bids[0].price)
    place = pb.PlaceOrderRequest(account="capacity", symbol="BTC-USD", side=common.SIDE_BUY,
                                 type=common.ORDER_TYPE_LIMIT, tif=common.TIME_IN_FORCE_GTC,
                                 price=f"{bid * 0.97:.2f}", qty="0.001")
    out = {"place": [], "book": []}
    for i in range(calls):
        t = time.perf_counter()
        orders.PlaceOrder(place, metadata=meta, timeout=10)
        out["place"].append(time.perf_counter() - t)
        t = time.perf_counter()
        market.GetBook(book, metadata=meta, timeout=10)
        out["book"].append(time.perf_counter() - t)
    print(" ".join(f"{k}={','.join(f'{x:.6f}' for x in v)}" for k, v in out.items()), flush=True)
'''


def p50(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 2]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


class Caller:
    """A unary client in its own process: `block()` times `calls` PlaceOrder and GetBook each."""

    def __init__(self, d: DaemonProcess, calls: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", CALLER, d.grpc_target, d.admin_token(), str(calls)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def block(self) -> dict[str, list[float]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the unary client died"
        return {k: [float(x) for x in v.split(",")] for k, v in (part.split("=") for part in line.split())}

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@dataclass
class Counted:
    opened: int
    rate: float
    """Messages per second the streams received while measured."""
    refused: int
    first_refusal: str


class Holder:
    """N StreamBook (depth 1) streams over the three symbols, in their own process; the
    constructor returns once each has its snapshot (or was refused)."""

    def __init__(self, d: DaemonProcess, n: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, d.grpc_target, d.admin_token(), str(n)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("open "), f"the stream holder died: {line!r}"
        self.opened = int(line.split()[1])

    def _say(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def measure(self) -> None:
        self._say("measure")

    def stop(self) -> Counted:
        assert self.proc.stdout is not None
        self._say("stop")
        rate, refused, first = self.proc.stdout.readline().split(" ", 2)
        self.proc.wait(60)
        return Counted(self.opened, float(rate), int(refused), first.strip())


@dataclass
class Compared:
    idle: dict[str, list[float]] = field(default_factory=lambda: {"place": [], "book": []})
    loaded: dict[str, list[float]] = field(default_factory=lambda: {"place": [], "book": []})
    counted: list[Counted] = field(default_factory=list)
    rss_mb: float = 0.0

    def ratio(self, kind: str) -> float:
        return p50(self.loaded[kind]) / p50(self.idle[kind])


def with_streams(d: DaemonProcess, caller: Caller, n: int, blocks: int) -> Compared:
    """Unary round trips in blocks that alternate between no streams and `n` open streams, so that
    both see the machine as it is at that moment."""
    out = Compared()
    for _ in range(blocks):
        for k, v in caller.block().items():
            out.idle[k] += v
        holder = Holder(d, n)
        holder.measure()
        for k, v in caller.block().items():
            out.loaded[k] += v
        out.rss_mb = max(out.rss_mb, rss_mb(d.proc.pid))
        out.counted.append(holder.stop())
    return out
