"""WebSocket fan-out: many clients on book:BTC-USD and trades:BTC-USD while the market runs fast.

Starts a daemon (simulated market on, a fresh temporary home, WebSocket limits raised for the
driver), then for each protocol in turn — JSON `/ws`, then protobuf `/ws/v2` — connects the clients,
drives the book with crossing IOC orders from several accounts (each one a trade and book deltas),
and reports delivered messages/s, delivery latency (engine event `ts` to client receipt, both on
this machine's clock) and the daemon's RSS. Clients run in worker processes so that decoding on
the client side is not what is measured.

    python bench/ws_fanout.py [--clients 200] [--seconds 10] [--rate 400] [--workers 2]
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

CHANNELS = ["book:BTC-USD", "trades:BTC-USD"]
CONFIG = """
[ws]
rate = 1000000
burst = 1000000
flood_close = 1000000
max_inflight = 1000
queue = 20000
[market]
simulate = true
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daemon(home: Path, log: str | None) -> tuple[subprocess.Popen, int]:
    (home / "config.toml").write_text(CONFIG)
    http = free_port()
    env = {**os.environ, "TRADSYS_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradsys", "daemon", "start", "--grpc-port", str(free_port()), "--http-port", str(http),
         "--log-level", "warning"],
        env=env, stdout=open(log, "ab") if log else subprocess.DEVNULL, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (home / "daemon.pid").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the daemon did not start")
        time.sleep(0.05)
    time.sleep(0.3)
    return proc, http


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- clients (worker processes) -------------------------------------------------------------------


def _client_worker(args: tuple[str, str, int, float, str]) -> tuple[int, list[int], int]:
    url, protocol, count, seconds, token = args
    return asyncio.run(_clients(url, protocol, count, seconds, token))


async def _clients(url: str, protocol: str, count: int, seconds: float, token: str) -> tuple[int, list[int], int]:
    from tradsys.proto import ws_pb2

    received = [0]
    latencies: list[int] = []
    failures = [0]
    stop_at = [0.0]
    ready = [0]

    async def one(i: int) -> None:
        try:
            async with connect(f"{url}?token={token}", max_size=None, max_queue=None) as ws:
                if protocol == "json":
                    await ws.send(json.dumps({"type": "subscribe", "id": 1, "channels": CHANNELS}))
                else:
                    await ws.send(ws_pb2.Envelope(id=1, type="subscribe", subscribe=ws_pb2.SubscribeRequest(
                        channels=CHANNELS)).SerializeToString())
                ready[0] += 1
                sample = i % 4 == 0  # every client counts; a quarter of them also time every message
                async for frame in ws:
                    now = time.time_ns()
                    if stop_at[0] and time.monotonic() > stop_at[0]:
                        return
                    if protocol == "json":
                        msg = json.loads(frame)
                        for item in msg["items"] if msg["type"] == "batch" else (msg,):
                            if item["type"] in ("book_update", "trade"):
                                received[0] += 1
                                if sample:
                                    latencies.append(now - item["data"]["ts"])
                        continue
                    env = ws_pb2.Envelope()
                    env.ParseFromString(frame)
                    items = env.batch.items if env.WhichOneof("body") == "batch" else [env]
                    for item in items:
                        kind = item.WhichOneof("body")
                        if kind == "book_update":
                            received[0] += 1
                            if sample:
                                latencies.append(now - item.book_update.ts_ns)
                        elif kind == "trade":
                            received[0] += 1
                            if sample:
                                latencies.append(now - item.trade.ts_ns)
        except Exception:
            failures[0] += 1

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    while ready[0] + failures[0] < count:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # settle: snapshots delivered
    received[0] = 0
    latencies.clear()
    stop_at[0] = time.monotonic() + seconds
    await asyncio.sleep(seconds)
    got = received[0]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return got, latencies, failures[0]


# -- the driver -----------------------------------------------------------------------------------


async def drive(url: str, token: str, rate: float, seconds: float) -> int:
    """Crossing IOC orders, alternately buying and selling, from several accounts: trades and book deltas."""
    async with connect(f"{url}?token={token}", max_size=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "b", "channels": ["book:BTC-USD"]}))
        mid = None
        while mid is None:
            msg = json.loads(await ws.recv())
            if msg["type"] == "book_snapshot" and msg["data"]["bids"] and msg["data"]["asks"]:
                mid = (Decimal(msg["data"]["bids"][0][0]) + Decimal(msg["data"]["asks"][0][0])) / 2
        await ws.send(json.dumps({"type": "unsubscribe", "id": "u", "channels": ["book:BTC-USD"]}))

        async def drain() -> None:
            async for _ in ws:
                pass

        reader = asyncio.create_task(drain())
        sent = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate)
            while sent < due:
                side = "buy" if sent % 2 == 0 else "sell"
                price = (mid * (Decimal("1.01") if side == "buy" else Decimal("0.99"))).quantize(Decimal(1))
                await ws.send(json.dumps({"type": "place", "id": sent, "order": {
                    "account": f"bench-{sent % 8}", "symbol": "BTC-USD", "side": side, "qty": "0.001",
                    "price": str(price), "tif": "IOC"}}))
                sent += 1
            await asyncio.sleep(0.005)
        reader.cancel()
        return sent


def percentile(samples: list[int], q: float) -> float:
    if not samples:
        return float("nan")
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(len(samples) * q))] / 1e6


def phase(http: int, pid: int, protocol: str, clients: int, workers: int, seconds: float, rate: float,
          token: str) -> dict[str, Any]:
    path = "/ws" if protocol == "json" else "/ws/v2"
    url = f"ws://127.0.0.1:{http}{path}"
    shares = [clients // workers + (1 if i < clients % workers else 0) for i in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        pending = pool.map_async(_client_worker, [(url, protocol, n, seconds, token) for n in shares])
        time.sleep(2.0 + clients / 200)  # connect, subscribe, settle
        peak = [rss_mb(pid)]
        orders = asyncio.run(_drive_and_watch(f"ws://127.0.0.1:{http}/ws", token, rate, seconds + 1.5, pid, peak))
        results = pending.get(timeout=120 + seconds)
    received = sum(r[0] for r in results)
    latencies = [lat for r in results for lat in r[1]]
    return {
        "protocol": protocol, "clients": clients, "failed": sum(r[2] for r in results), "orders": orders,
        "msgs_per_s": received / seconds, "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
        "rss_mb": peak[0],
    }


async def _drive_and_watch(url: str, token: str, rate: float, seconds: float, pid: int, peak: list[float]) -> int:
    async def watch() -> None:
        while True:
            peak[0] = max(peak[0], rss_mb(pid))
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch())
    try:
        return await drive(url, token, rate, seconds)
    finally:
        watcher.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=400.0, help="driver orders per second")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--daemon-log", help="append the daemon's log to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        proc, http = start_daemon(home, args.daemon_log)
        try:
            token = (home / "admin.token").read_text().strip()
            print(f"{args.clients} clients on {', '.join(CHANNELS)}; driver {args.rate:g} IOC orders/s; "
                  f"{args.seconds:g} s per protocol; {os.cpu_count()} CPUs")
            print(f"{'protocol':<10}{'msgs/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'RSS MB':>10}{'orders':>9}{'failed':>8}")
            for protocol in ("json", "proto"):
                if proc.poll() is not None:
                    raise SystemExit(f"the daemon exited with {proc.returncode}")
                r = phase(http, proc.pid, protocol, args.clients, args.workers, args.seconds, args.rate, token)
                print(f"{'/ws' if protocol == 'json' else '/ws/v2':<10}{r['msgs_per_s']:>12,.0f}{r['p50_ms']:>10.2f}"
                      f"{r['p99_ms']:>10.2f}{r['rss_mb']:>10.1f}{r['orders']:>9}{r['failed']:>8}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


if __name__ == "__main__":
    main()
