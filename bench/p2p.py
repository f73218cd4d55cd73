"""Peer to peer: two Python peers (tradsys.p2p) on a WebRTC data channel, beside the daemon's relay.

Starts a daemon (market off, a fresh temporary home, loopback only; ICE candidates on 127.0.0.1),
then for the binary and json serializations measures between two peers in this process: the data channel's open
time (connect() to open, signaling included), the round trip of a small signal (p50/p99, one at a
time) and one-way messages/s (a burst, until the receiver has the last). The same round trip and
rate through the daemon's PeerJS WebSocket relay (messages that go as OFFERs from one signaling
client to the other) is the comparison: what signals would cost if the server carried them.

    python bench/p2p.py [--rounds 2000] [--burst 20000] [--opens 20]
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import start_daemon  # noqa: E402
from tradsys.daemon.auth import issue_token, load_secret  # noqa: E402
from tradsys.p2p import Peer, signaling_url, use_addresses  # noqa: E402

SIGNAL = {"symbol": "BTC-USD", "side": "buy", "strength": 0.7, "time": 0, "sender": "bench-a"}
CONFIG = "[market]\nsimulate = false\n[peerjs]\nqueue_limit = 100000\nqueue_bytes = 67108864\npeer_bytes = 67108864\n"


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def data_channel(url: str, key: str, serialization: str, args: argparse.Namespace) -> dict[str, float]:
    async with Peer(url, key, f"bench-a-{serialization}") as a, Peer(url, key, f"bench-b-{serialization}") as b:
        opens = []
        for _ in range(args.opens):
            start = time.perf_counter()
            conn = await a.connect(b.id, serialization=serialization, reliable=True)
            opens.append(time.perf_counter() - start)
            await (await b.accept()).close()
            await conn.close()
        conn = await a.connect(b.id, serialization=serialization, reliable=True)
        far = await b.accept()
        far.on_data = far.send  # echo
        rtts = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            conn.send(SIGNAL)
            await conn.recv()
            rtts.append(time.perf_counter() - start)
        far.on_data = None
        start = time.perf_counter()
        for i in range(args.burst):
            conn.send({**SIGNAL, "time": i})
        while (await far.recv())["time"] != args.burst - 1:
            pass
        rate = args.burst / (time.perf_counter() - start)
    p50, p99 = percentiles(rtts)
    return {"open": statistics.median(opens), "p50": p50, "p99": p99, "rate": rate}


async def relay(url: str, key: str, args: argparse.Namespace) -> dict[str, float]:
    """The same signal as the payload of OFFERs the daemon relays between two signaling clients."""
    def address(peer_id: str) -> str:
        return f"{url}?{urlencode({'key': key, 'id': peer_id, 'token': 'bench'})}"

    async with connect(address("relay-a"), compression=None) as a, connect(address("relay-b"), compression=None) as b:
        for ws in (a, b):
            assert json.loads(await ws.recv())["type"] == "OPEN"

        def offer(dst: str, n: int) -> str:
            return json.dumps({"type": "OFFER", "dst": dst, "payload": {**SIGNAL, "time": n}})

        rtts = []
        for n in range(args.rounds):
            start = time.perf_counter()
            await a.send(offer("relay-b", n))
            await b.recv()
            await b.send(offer("relay-a", n))
            await a.recv()
            rtts.append(time.perf_counter() - start)
        start = time.perf_counter()
        sender = asyncio.create_task(_burst(a, [offer("relay-b", n) for n in range(args.burst)]))
        while json.loads(await b.recv())["payload"]["time"] != args.burst - 1:
            pass
        rate = args.burst / (time.perf_counter() - start)
        await sender
    p50, p99 = percentiles(rtts)
    return {"p50": p50, "p99": p99, "rate": rate}


async def _burst(ws: object, messages: list[str]) -> None:
    for message in messages:
        await ws.send(message)  # type: ignore[attr-defined]


async def run(url: str, key: str, args: argparse.Namespace) -> None:
    print(f"{'path':<28} {'open ms':>8} {'rtt p50 ms':>11} {'rtt p99 ms':>11} {'one-way msg/s':>14}")
    for serialization in ("binary", "json"):
        row = await data_channel(url, key, serialization, args)
        print(f"{'data channel, ' + serialization:<28} {row['open'] * 1e3:>8.1f} {row['p50'] * 1e3:>11.3f} "
              f"{row['p99'] * 1e3:>11.3f} {row['rate']:>14,.0f}")
    row = await relay(url, key, args)
    print(f"{'daemon WebSocket relay':<28} {'':>8} {row['p50'] * 1e3:>11.3f} {row['p99'] * 1e3:>11.3f} "
          f"{row['rate']:>14,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=20000)
    parser.add_argument("--opens", type=int, default=20)
    args = parser.parse_args()
    use_addresses(["127.0.0.1"])
    with tempfile.TemporaryDirectory(prefix="tradsys-bench-p2p-") as tmp:
        home = Path(tmp)
        (home / "config.toml").write_text(CONFIG)
        daemon = start_daemon(home, "--log-level", "warning")
        try:
            key = issue_token(load_secret(home), "viewer", ttl=timedelta(hours=1), subject="bench")
            asyncio.run(run(signaling_url(daemon.http), key, args))
        finally:
            daemon.kill(15)


if __name__ == "__main__":
    main()
