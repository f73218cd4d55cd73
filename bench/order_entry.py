"""Order entry over gRPC against a real daemon: unary PlaceOrder latency and streaming throughput.

Starts a daemon (no simulated market, a fresh temporary home) once per durability mode —
"fsync" (the default: an fsync per group commit) and "process" (survives SIGKILL, not power
loss) — and a bare grpcio echo server for the floor a unary call cannot beat. The echo server
runs in a process of its own, like the daemon.

Floors are measured beside PlaceOrder: the daemon's own, a second daemon whose PlaceOrder
authenticates and parses the request, then answers without reaching the engine or the store (the
same kind of handler as the real one: a coroutine on the gRPC loop); in fsync mode, one 4 KiB write
+ fdatasync in the daemon's home (that floor plus one fdatasync is the least an acknowledgement
durable against power loss can cost, before any work); and the daemon's own work for an order
(the engine's cycle, the journal's write and the response message) in-process on one thread,
with no transport and no thread hop: the floor plus that work is the least a PlaceOrder can cost
with this engine and store, whatever the daemon's threads do (`bench/unary_floor.py` measures the
hop to the engine thread). Blocks of 100 of each alternate, so that all see the machine and its
disk at the same moment (this VM's speed drifts by ±15 % between runs, and its disk is shared),
without the daemon's idle work after an order landing on the next block. The unary p50 is printed
as a ratio to the floor plus fdatasync (fsync mode) and to the echo (process mode).

For the stream, the daemon's CPU time per acknowledged order is printed beside the rate (it moves
far less than the rate when other processes share the machine), and two in-process floors on the
same batches, on one thread, in CPU time: decoding and the engine alone, and then all the Python
work the daemon does per order besides the transport and SQLite (acks, journal and projection
rows, the encoded ack). Python work holds the interpreter lock, so the second bounds the daemon's
rate whatever its threads and I/O do.

    python bench/order_entry.py [--unary 2000] [--stream 100000] [--batch 500]
"""

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import grpc

from tradsys.proto import common_pb2 as common
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc
from tradsys.proto import risk_pb2 as rk
from tradsys.proto import risk_pb2_grpc as rk_grpc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


ECHO_SERVER = """
import sys
from concurrent.futures import ThreadPoolExecutor
import grpc
handler = grpc.method_handlers_generic_handler(
    "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, _context: request)})
server = grpc.server(ThreadPoolExecutor(max_workers=32))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
print("ready", flush=True)
server.wait_for_termination()
"""


BLOCK = 100

FLOOR_DAEMON = """
import sys
from tradsys.daemon import entry
from tradsys.daemon.rpc import orders
from tradsys.daemon.rpc.streaming import checked
from tradsys.proto import orders_pb2 as pb

answer = pb.PlaceOrderResponse(order=pb.Order(order_id="1", account="bench1", symbol="ETH-USD", price="3000.00",
                                              qty="0.010", open_qty="0.010", filled_qty="0", status=1, created_ns=1))

async def place(self, request, context):
    entry.command(await checked(context, self.gate.authenticate), "place", request, self.store.get_order)
    return answer

orders.OrderService.PlaceOrder = place
from tradsys.cli.app import app
sys.argv = ["tradsys", *sys.argv[1:]]
app()
"""
"""The real daemon, with PlaceOrder authenticating and parsing as usual but answering a fixed
response instead of reaching the engine and the store: the floor of the daemon's own gRPC path."""


def start_echo() -> tuple[subprocess.Popen, str]:
    """A bare grpcio unary echo server in its own process: the same transport, no work."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc, f"127.0.0.1:{port}"


def start_daemon(home: Path, durability: str, program: tuple[str, ...] = ("-m", "tradsys")) -> tuple[subprocess.Popen, str]:
    """`python PROGRAM daemon start ...` with no simulated market in `home`, once it is serving."""
    grpc_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, *program, "daemon", "start", "--no-simulate", "--grpc-port", str(grpc_port),
         "--http-port", str(http_port), "--log-level", "warning", "--durability", durability],
        env={**os.environ, "TRADSYS_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (home / "daemon.pid").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the daemon did not start")
        time.sleep(0.1)
    return proc, f"127.0.0.1:{grpc_port}"


def place_request(i: int) -> pb.PlaceOrderRequest:
    """Passive orders on both sides of 3,000 that never cross, spread over many accounts."""
    side = common.SIDE_BUY if i % 2 else common.SIDE_SELL
    price = 2999 - i % 90 if i % 2 else 3001 + i % 90
    return pb.PlaceOrderRequest(account=f"bench{i % 64}", symbol="ETH-USD", side=side, price=f"{price}.00", qty="0.010")


class Fdatasync:
    """One 4 KiB page written and fdatasync'ed per call, on the daemon's file system: what each
    fsync-mode commit waits for on top of SQLite's own work, whatever else the daemon does."""

    def __init__(self, where: Path) -> None:
        self.path = where / "fdatasync.probe"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT)
        os.pwrite(self.fd, b"\0" * 4096 * 16, 0)
        os.fsync(self.fd)

    def __call__(self, i: int) -> None:
        os.pwrite(self.fd, b"x" * 4096, i % 16 * 4096)
        os.fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)
        self.path.unlink()


class OrderWork:
    """The daemon's own work for one PlaceOrder per call, besides the transport and the request's
    parsing: the engine's cycle and the journal's durable write, run on this thread as
    `Core.execute` runs them for an idle engine, then the response message; in a store of its
    own in `where`, with the daemon's durability."""

    def __init__(self, where: Path, durability: str, count: int) -> None:
        from tradsys.daemon import entry
        from tradsys.daemon.app import make_venue
        from tradsys.daemon.auth import Principal, Role
        from tradsys.daemon.config import Config
        from tradsys.daemon.core import Core
        from tradsys.daemon.rpc.convert import entry_response
        from tradsys.daemon.store import Store
        from tradsys.engine.commands import apply

        self.entry, self.response = entry, entry_response
        self.store = Store(where / "work.db", fsync=durability == "fsync")
        venue = make_venue(Config())
        apply(venue, {"op": "limit", "key": "max_orders_per_second", "value": "none", "ts": time.time_ns()})
        self.core = Core(venue, self.store.journal)
        self.core.start()
        principal = Principal("bench", Role.ADMIN, ("*",), None)
        self.commands = iter([entry.command(principal, "place", place_request(i), None) for i in range(count)])

    def __call__(self, _i: int) -> None:
        (result,) = self.core.execute([next(self.commands)], self.entry.outcomes)
        self.response("place", self.entry.answer("place", result))

    def close(self) -> None:
        self.core.stop()
        self.store.close()


def alternate(calls: dict[str, Callable[[int], object]], count: int) -> dict[str, list[float]]:
    """Latencies of `count` calls of each, in alternating blocks of BLOCK, after 200 untimed ones."""
    for call in calls.values():
        for i in range(200):
            call(i)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for block in range(0, count, BLOCK):
        for name, call in calls.items():
            for i in range(block, min(block + BLOCK, count)):
                start = time.perf_counter()
                call(i)
                samples[name].append(time.perf_counter() - start)
            time.sleep(0.005)  # the daemon's idle work after the last order is not the next block's
    return samples


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def order_batches(args: argparse.Namespace) -> list[pb.OrderBatch]:
    return [
        pb.OrderBatch(seq=b, requests=[pb.OrderRequest(place=place_request(b * args.batch + j)) for j in range(args.batch)])
        for b in range(args.stream // args.batch)
    ]


def in_process_floor(args: argparse.Namespace) -> tuple[float, float]:
    """(engine floor, Python floor) in orders per CPU second on this thread: the stream's batches,
    as received bytes, decoded and turned into commands and applied to a fresh venue as the
    engine thread does; then also their acks, their journal and projection rows and the encoded
    acks (what the daemon does in Python per order besides gRPC's transport and SQLite)."""
    from tradsys.daemon import entry
    from tradsys.daemon.app import make_venue
    from tradsys.daemon.auth import Principal, Role
    from tradsys.daemon.config import Config
    from tradsys.daemon.rpc.orders import _add_result
    from tradsys.daemon.store.projection import project
    from tradsys.engine.commands import apply

    received = [batch.SerializeToString() for batch in order_batches(args)]
    principal = Principal("bench", Role.ADMIN, ("*",), None)
    rates = []
    for whole in (False, True):
        venue = make_venue(Config())
        apply(venue, {"op": "limit", "key": "max_orders_per_second", "value": "none", "ts": time.time_ns()})
        next_id = seq = 1
        start = time.thread_time()
        for raw in received:
            commands = [entry.command(principal, "place", req.place, None) for req in pb.OrderBatch.FromString(raw).requests]
            now = time.time_ns()
            applied, results = [], []
            for cmd in commands:
                cmd["id"], cmd["ts"] = str(next_id), now
                next_id += 1
                events = apply(venue, cmd)
                applied.append((cmd, events))
                results.append(events)
            if whole:
                acks = entry.acks(commands, results, venue)
                seq = project(applied, venue, seq).seq
                ack = pb.OrderBatchAck(seq=seq)
                for outcome in acks:
                    _add_result(ack.results.add, outcome)
                ack.SerializeToString()
        rates.append(len(received) * args.batch / (time.thread_time() - start))
    return rates[0], rates[1]


class Measured(NamedTuple):
    unary: dict[str, list[float]]
    """Latencies by what was timed, in alternating blocks: place, floor, echo, work, fdatasync (fsync mode)."""
    rate: float
    errors: int
    cpu_per_order: float


def measure(durability: str, echo: Callable[[bytes], bytes], args: argparse.Namespace) -> Measured:
    """Unary latencies against a fresh daemon, alternating with the floor daemon's, the echo's, one
    order's work in-process and (fsync mode) one fdatasync in the daemon's home, all at the same
    moments; then the stream's throughput."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as floor_tmp:
        home = Path(tmp)
        proc, target = start_daemon(home, durability)
        floor_proc, floor_target = start_daemon(Path(floor_tmp), durability, program=("-c", FLOOR_DAEMON))
        work = OrderWork(home, durability, 200 + args.unary)
        flush = Fdatasync(home) if durability == "fsync" else None
        try:
            meta = (("authorization", "Bearer " + (home / "admin.token").read_text().strip()),)
            floor_meta = (("authorization", "Bearer " + (Path(floor_tmp) / "admin.token").read_text().strip()),)
            channel, floor_channel = grpc.insecure_channel(target), grpc.insecure_channel(floor_target)
            rk_grpc.RiskServiceStub(channel).SetLimits(
                rk.SetLimitsRequest(limits=[rk.RiskLimit(key="max_orders_per_second", value="none")]), metadata=meta
            )
            orders, floor_orders = pb_grpc.OrderServiceStub(channel), pb_grpc.OrderServiceStub(floor_channel)
            payload = b"x" * 96
            calls: dict[str, Callable[[int], object]] = {
                "place": lambda i: orders.PlaceOrder(place_request(i), metadata=meta),
                "floor": lambda i: floor_orders.PlaceOrder(place_request(i), metadata=floor_meta),
                "echo": lambda _i: echo(payload),
                "work": work,
            }
            if flush is not None:
                calls["fdatasync"] = flush
            unary = alternate(calls, args.unary)
            floor_channel.close()
            batches = order_batches(args)
            acked = errors = 0
            cpu = cpu_seconds(proc.pid)
            start = time.perf_counter()
            for ack in orders.OrderEntry(iter(batches), metadata=meta):
                acked += len(ack.results)
                errors += sum(1 for r in ack.results if r.HasField("error"))
            rate = acked / (time.perf_counter() - start)
            cpu_per_order = (cpu_seconds(proc.pid) - cpu) / max(acked, 1)
            channel.close()
        finally:
            for daemon in (proc, floor_proc):
                daemon.send_signal(signal.SIGTERM)
            for daemon in (proc, floor_proc):
                daemon.wait(30)
            work.close()
            if flush is not None:
                flush.close()
    return Measured(unary, rate, errors, cpu_per_order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unary", type=int, default=2000)
    parser.add_argument("--stream", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}")
    echo_proc, echo_target = start_echo()
    echo_channel = grpc.insecure_channel(echo_target)
    try:
        echo = echo_channel.unary_unary("/bench.Echo/Echo")
        for durability in ("fsync", "process"):
            measured = measure(durability, echo, args)
            p50 = {name: percentiles(samples)[0] for name, samples in measured.unary.items()}
            p99 = {name: percentiles(samples)[1] for name, samples in measured.unary.items()}
            print(f"[durability={durability}]  ({args.unary} of each, in alternating blocks of {BLOCK})")
            print(f"  bare grpcio echo:      p50 {p50['echo'] * 1e6:6.0f} us  p99 {p99['echo'] * 1e6:6.0f} us")
            print(f"  PlaceOrder, no work:   p50 {p50['floor'] * 1e6:6.0f} us             "
                  f"(the daemon's floor: authenticated and parsed, answered without the engine or the store; "
                  f"{p50['floor'] / p50['echo']:.2f}x echo)")
            if durability == "fsync":
                print(f"  one 4 KiB fdatasync:   p50 {p50['fdatasync'] * 1e6:6.0f} us")
            print(f"  unary PlaceOrder:      p50 {p50['place'] * 1e6:6.0f} us  p99 {p99['place'] * 1e6:6.0f} us  "
                  f"({p50['place'] / p50['echo']:.2f}x echo)")
            print(f"  its work in-process:   p50 {p50['work'] * 1e6:6.0f} us             "
                  "(engine cycle, journal write, response; no transport, no thread hop)")
            least = p50["floor"] + p50["work"]
            if durability == "fsync":
                bound = p50["floor"] + p50["fdatasync"]
                print(f"  PlaceOrder p50 = {p50['place'] / bound:.2f}x (floor + fdatasync), target <= 1.15x; "
                      f"floor + its work = {least / bound:.2f}x, the least it can be")
            else:
                print(f"  PlaceOrder p50 = {p50['place'] / p50['echo']:.2f}x echo, target <= 1.3x; "
                      f"floor + its work = {least / p50['echo']:.2f}x echo, the least it can be")
            print(f"  streaming OrderEntry:  {measured.rate:,.0f} acked durable orders/s "
                  f"({args.stream:,} orders in batches of {args.batch}, {measured.errors} refused); "
                  f"daemon CPU {measured.cpu_per_order * 1e6:.1f} us/order")
        engine, python = in_process_floor(args)
        print("[floor: the stream's batches in-process, one thread, orders per CPU second]")
        print(f"  decode + command + engine:                       {engine:,.0f}/s")
        print(f"  + acks, journal and projection rows, encoded ack: {python:,.0f}/s")
    finally:
        echo_channel.close()
        echo_proc.terminate()
        echo_proc.wait(10)


if __name__ == "__main__":
    main()
