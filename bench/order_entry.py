"""Order entry over gRPC against a real daemon: unary PlaceOrder latency and streaming throughput.

Starts a daemon (no simulated market, a fresh temporary home) once per durability mode —
"fsync" (the default: an fsync per group commit) and "process" (survives SIGKILL, not power
loss) — and a bare grpcio echo server for the floor a unary call cannot beat. The echo server
runs in a process of its own, like the daemon, and blocks of 100 echo and PlaceOrder calls
alternate, so that both see the same machine at the same moment (this VM's speed drifts by
±15 % between runs) without the daemon's idle work after an order landing on an echo.

Two floors are printed beside the figures. First the daemon's own: a daemon whose PlaceOrder
authenticates and parses the request, then answers without reaching the engine or the store. Then,
in fsync mode, one 4 KiB write + fdatasync in the daemon's home: that floor plus one fdatasync is
the least an acknowledgement durable against power loss can cost, before any work.

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
from tradsys.proto import orders_pb2 as pb

answer = pb.PlaceOrderResponse(order=pb.Order(order_id="1", account="bench1", symbol="ETH-USD", price="3000.00",
                                              qty="0.010", open_qty="0.010", filled_qty="0", status=1, created_ns=1))

def place(self, request, context):
    entry.command(self.gate.authenticate(context), "place", request, self.store.get_order)
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


def fdatasync_seconds(where: Path, count: int = 300) -> float:
    """p50 of one 4 KiB page written and fdatasync'ed on the daemon's file system: what each
    fsync-mode commit waits for on top of SQLite's own work, whatever else the daemon does."""
    path = where / "fdatasync.probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.pwrite(fd, b"\0" * 4096 * 16, 0)
        os.fsync(fd)
        samples = []
        for i in range(count):
            start = time.perf_counter()
            os.pwrite(fd, b"x" * 4096, i % 16 * 4096)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    return percentiles(samples)[0]


def alternate(place: Callable[[int], object], echo: Callable[[int], object], count: int) -> tuple[list[float], list[float]]:
    """Latencies of `count` calls of each, in alternating blocks of BLOCK, after 200 untimed ones."""
    for i in range(200):
        place(i)
        echo(i)
    placed: list[float] = []
    bare: list[float] = []
    for block in range(0, count, BLOCK):
        for i in range(block, min(block + BLOCK, count)):
            start = time.perf_counter()
            place(i)
            placed.append(time.perf_counter() - start)
        time.sleep(0.005)  # the daemon's idle work after the last order is not the echo's
        for i in range(block, min(block + BLOCK, count)):
            start = time.perf_counter()
            echo(i)
            bare.append(time.perf_counter() - start)
    return placed, bare


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


def measure(durability: str, echo: Callable[[bytes], bytes], args: argparse.Namespace
            ) -> tuple[list[float], list[float], float, int, float, float]:
    """Unary latencies (PlaceOrder and echo, alternating), then streaming throughput, against a
    fresh daemon; then, in fsync mode, one fdatasync's time on its file system."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, target = start_daemon(Path(tmp), durability)
        try:
            token = (Path(tmp) / "admin.token").read_text().strip()
            meta = (("authorization", f"Bearer {token}"),)
            channel = grpc.insecure_channel(target)
            rk_grpc.RiskServiceStub(channel).SetLimits(
                rk.SetLimitsRequest(limits=[rk.RiskLimit(key="max_orders_per_second", value="none")]), metadata=meta
            )
            orders = pb_grpc.OrderServiceStub(channel)
            payload = b"x" * 96
            unary, bare = alternate(lambda i: orders.PlaceOrder(place_request(i), metadata=meta),
                                    lambda _i: echo(payload), args.unary)
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
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        flush = fdatasync_seconds(Path(tmp)) if durability == "fsync" else 0.0
    return unary, bare, rate, errors, flush, cpu_per_order


def measure_floor(echo: Callable[[bytes], bytes], args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """PlaceOrder latencies against FLOOR_DAEMON, and the echo's, alternating."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, target = start_daemon(Path(tmp), "fsync", program=("-c", FLOOR_DAEMON))
        try:
            meta = (("authorization", "Bearer " + (Path(tmp) / "admin.token").read_text().strip()),)
            channel = grpc.insecure_channel(target)
            orders = pb_grpc.OrderServiceStub(channel)
            payload = b"x" * 96
            samples = alternate(lambda i: orders.PlaceOrder(place_request(i), metadata=meta), lambda _i: echo(payload), args.unary)
            channel.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    return samples


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
        floor_p50, floor_echo_p50 = (percentiles(samples)[0] for samples in measure_floor(echo, args))
        floor_x = floor_p50 / floor_echo_p50
        print("[floor: PlaceOrder authenticated and parsed, then answered without the engine or the store]")
        print(f"  bare grpcio echo:      p50 {floor_echo_p50 * 1e6:6.0f} us")
        print(f"  PlaceOrder, no work:   p50 {floor_p50 * 1e6:6.0f} us             (p50 = {floor_x:.2f}x echo)")
        for durability in ("fsync", "process"):
            unary, bare, rate, errors, flush, cpu_per_order = measure(durability, echo, args)
            p50, p99 = percentiles(unary)
            echo_p50, echo_p99 = percentiles(bare)
            print(f"[durability={durability}]")
            print(f"  bare grpcio echo:      p50 {echo_p50 * 1e6:6.0f} us  p99 {echo_p99 * 1e6:6.0f} us  ({args.unary} calls)")
            print(f"  unary PlaceOrder:      p50 {p50 * 1e6:6.0f} us  p99 {p99 * 1e6:6.0f} us  (p50 = {p50 / echo_p50:.2f}x echo)")
            if durability == "fsync":
                print(f"  one 4 KiB fdatasync:   p50 {flush * 1e6:6.0f} us             "
                      f"(floor + fdatasync = {floor_x + flush / echo_p50:.2f}x echo, before any work)")
            print(f"  streaming OrderEntry:  {rate:,.0f} acked durable orders/s "
                  f"({args.stream:,} orders in batches of {args.batch}, {errors} refused); "
                  f"daemon CPU {cpu_per_order * 1e6:.1f} us/order")
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
