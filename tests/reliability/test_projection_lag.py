"""The order history behind the journal, through a real daemon: a read right after an ack sees
the order, and a daemon killed after acknowledging orders it had not yet projected has each of
them in its history exactly once after the restart."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import DaemonProcess, eventually, free_port, start_daemon
from tradsys.proto import common_pb2 as common
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc

DAEMON = """
import sys, threading, time
from tradsys.daemon.store import journal, projector
journal.INLINE_ROWS = -1  # every batch goes through the projector
write = projector.write
if sys.argv[1] == "stalled":  # acknowledged, never projected
    projector.write = lambda connect, chunk, lock: threading.Event().wait()
else:  # projected 50 ms behind the acknowledgement
    projector.write = lambda connect, chunk, lock: (time.sleep(0.05), write(connect, chunk, lock))
from tradsys.cli.app import app
sys.argv = ["tradsys", *sys.argv[2:]]
app()
"""
"""The daemon with its projection held back: "stalled" (every order it acknowledges is in the
journal only) or "slow"."""


def start_lagging(home: Path, how: str) -> DaemonProcess:
    home.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port = free_port(), free_port()
    log = home / "test-daemon.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", DAEMON, how, "daemon", "start", "--no-simulate", "--grpc-port", str(grpc_port),
             "--http-port", str(http_port)],
            env={**os.environ, "TRADSYS_HOME": str(home)}, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    daemon = DaemonProcess(home, grpc_port, http_port, proc, log)
    eventually(lambda: json.loads((home / "daemon.pid").read_text())["pid"] == proc.pid, timeout=30)
    return daemon


def place(i: int, side: int, price: str) -> pb.PlaceOrderRequest:
    """Order `i`: buys from account "b", sells from "s" (no self-trade prevention in the way)."""
    return pb.PlaceOrderRequest(account="b" if side == common.SIDE_BUY else "s", symbol="ETH-USD", side=side,
                                price=price, qty="0.010", client_id=f"c{i}")


def test_a_read_right_after_an_ack_sees_the_order(tmp_path: Path) -> None:
    d = start_lagging(tmp_path / "home", "slow")
    try:
        with d.channel() as channel:
            stub = pb_grpc.OrderServiceStub(channel)
            meta = d.metadata()
            for i in range(20):
                placed = stub.PlaceOrder(place(i, common.SIDE_BUY, f"{2000 + i}.00"), metadata=meta)
                assert stub.GetOrder(pb.GetOrderRequest(order_id=placed.order.order_id), metadata=meta).order.client_id == f"c{i}"
            batches = [pb.OrderBatch(seq=b, requests=[pb.OrderRequest(place=place(100 * b + j, common.SIDE_SELL, f"{3000 + j}.00"))
                                                      for j in range(100)]) for b in range(1, 9)]
            acked: set[str] = set()
            for ack in stub.OrderEntry(iter(batches), metadata=meta):
                acked |= {r.order_id for r in ack.results}
                assert stub.GetOrder(pb.GetOrderRequest(order_id=ack.results[-1].order_id), metadata=meta).order.order_id
                listed = stub.ListOrders(pb.ListOrdersRequest(page_size=1000), metadata=meta).orders
                assert acked <= {o.order_id for o in listed}
    finally:
        d.kill(signal.SIGTERM)


def test_orders_acknowledged_but_not_projected_are_there_once_after_kill_9(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = start_lagging(home, "stalled")
    acked: dict[str, str] = {}
    fills = 0
    try:
        with d.channel() as channel:
            stub = pb_grpc.OrderServiceStub(channel)
            meta = d.metadata()
            for i in range(10):  # resting bids, then sells that cross some of them
                acked[f"c{i}"] = stub.PlaceOrder(place(i, common.SIDE_BUY, f"{2000 + i}.00"), metadata=meta).order.order_id
            batch = pb.OrderBatch(seq=1, requests=[pb.OrderRequest(place=place(i, common.SIDE_SELL, "2005.00"))
                                                   for i in range(10, 14)])
            for ack in stub.OrderEntry(iter([batch]), metadata=meta):
                for result in ack.results:
                    assert not result.HasField("error")
                    acked[result.client_id] = result.order_id
            crossing = stub.PlaceOrder(place(14, common.SIDE_SELL, "2000.00"), metadata=meta)
            acked["c14"] = crossing.order.order_id
            fills = 2 * (4 + len(crossing.fills))  # each match is a taker fill and a maker fill
    finally:
        d.kill(signal.SIGKILL)
    assert fills > 8

    d = start_daemon(home, "--no-simulate")
    try:
        with d.channel() as channel:
            stub = pb_grpc.OrderServiceStub(channel)
            meta = d.metadata()
            listed = stub.ListOrders(pb.ListOrdersRequest(page_size=1000), metadata=meta).orders
            assert sorted(o.client_id for o in listed) == sorted(acked)
            assert {o.client_id: o.order_id for o in listed} == acked
            recorded = stub.ListFills(pb.ListFillsRequest(page_size=1000), metadata=meta).fills
            assert len(recorded) == len({f.fill_id for f in recorded}) == fills
    finally:
        d.kill(signal.SIGTERM)
