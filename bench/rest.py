"""REST vs gRPC for the same calls: p50 latency and requests/s, one client, sequential.

Starts a daemon with the simulated market in a temporary home (loopback only), places a few orders,
then times GetBook (BTC-USD, depth 10), GetOrder and ListOrders (page of 100) over gRPC (one channel)
and over REST (one keep-alive HTTP/1.1 connection, `http.client`), in alternating blocks so drift in
the machine's speed falls on both alike. Also times REST GetBook on a new connection per request,
the shape of every call if REST had stayed inside websockets' handshake parser.

    python bench/rest.py [--calls 2000] [--rounds 3]
"""

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import start_daemon  # noqa: E402
from tradsys.proto import marketdata_pb2 as md  # noqa: E402
from tradsys.proto import marketdata_pb2_grpc as md_grpc  # noqa: E402
from tradsys.proto import orders_pb2 as pb  # noqa: E402
from tradsys.proto import orders_pb2_grpc as pb_grpc  # noqa: E402


def timed(call: Callable[[], object], count: int) -> tuple[float, float]:
    """p50 in microseconds and calls per second over `count` calls."""
    times = []
    start = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6, count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tradsys-bench-rest-") as tmp:
        daemon = start_daemon(Path(tmp), "--seed", "3")
        try:
            daemon.wait_quoted()
            run(daemon, args.calls, args.rounds)
        finally:
            daemon.kill(15)


def run(daemon: object, calls: int, rounds: int) -> None:
    token = daemon.admin_token()
    meta = daemon.metadata()
    channel = daemon.channel()
    orders, market = pb_grpc.OrderServiceStub(channel), md_grpc.MarketDataServiceStub(channel)
    placed = orders.PlaceOrder(pb.PlaceOrderRequest(account="default", symbol="BTC-USD", side=1, type=1, tif=1,
                                                    price="58000", qty="0.01"), metadata=meta)
    order_id = placed.order.order_id
    host, port = daemon.http.split(":")
    connection = http.client.HTTPConnection(host, int(port))
    headers = {"Authorization": f"Bearer {token}"}

    def rest(path: str, fresh: bool = False) -> Callable[[], object]:
        def call() -> object:
            conn = http.client.HTTPConnection(host, int(port)) if fresh else connection
            conn.request("GET", path, headers=headers)
            answer = conn.getresponse()
            body = answer.read()
            assert answer.status == 200, body
            if fresh:
                conn.close()
            return body
        return call

    pairs = {
        "GetBook": (lambda: market.GetBook(md.GetBookRequest(symbol="BTC-USD", depth=10), metadata=meta),
                    rest("/api/v1/books/BTC-USD?depth=10")),
        "GetOrder": (lambda: orders.GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=meta),
                     rest(f"/api/v1/orders/{order_id}")),
        "ListOrders": (lambda: orders.ListOrders(pb.ListOrdersRequest(page_size=100), metadata=meta),
                       rest("/api/v1/orders?page_size=100")),
    }
    fresh = rest("/api/v1/books/BTC-USD?depth=10", fresh=True)
    for grpc_call, rest_call in pairs.values():  # warm both paths (token cache, connections, pools)
        timed(grpc_call, 200)
        timed(rest_call, 200)
    print(f"{'call':<12}{'gRPC p50 us':>13}{'gRPC req/s':>12}{'REST p50 us':>13}{'REST req/s':>12}{'REST/gRPC p50':>15}")
    for round_ in range(rounds):
        for name, (grpc_call, rest_call) in pairs.items():
            g50, grps = timed(grpc_call, calls)
            r50, rrps = timed(rest_call, calls)
            print(f"{name:<12}{g50:>13.0f}{grps:>12.0f}{r50:>13.0f}{rrps:>12.0f}{r50 / g50:>14.2f}x")
        f50, frps = timed(fresh, calls // 4)
        print(f"{'GetBook, new connection each (REST)':<50}{f50:>12.0f} us p50 {frps:>8.0f} req/s  (round {round_ + 1})")
    channel.close()


if __name__ == "__main__":
    main()
