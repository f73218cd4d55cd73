"""The daemon as a process: SIGKILL loses no acknowledged order, CLI start/status/stop, clear start-up errors."""

import json
import os
import signal
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from tests.conftest import DaemonProcess, dumped, eventually, free_port, start_daemon
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc

BUY, SELL = common.SIDE_BUY, common.SIDE_SELL


def place(stub: pb_grpc.OrderServiceStub, daemon: DaemonProcess, account: str, side: int, price: str, qty: str) -> pb.Order:
    return stub.PlaceOrder(
        pb.PlaceOrderRequest(account=account, symbol="ETH-USD", side=side, price=price, qty=qty),
        metadata=daemon.metadata(),
    ).order


def snapshot(stub: pb_grpc.OrderServiceStub, daemon: DaemonProcess, ids: list[str]) -> dict:
    orders = {i: stub.GetOrder(pb.GetOrderRequest(order_id=i), metadata=daemon.metadata()).order for i in ids}
    positions = stub.GetPositions(pb.GetPositionsRequest(), metadata=daemon.metadata()).positions
    fills = stub.ListFills(pb.ListFillsRequest(page_size=1000), metadata=daemon.metadata()).fills
    return {
        "orders": {i: (o.status, o.filled_qty, o.open_qty, o.price) for i, o in orders.items()},
        "positions": sorted((p.account, p.symbol, p.qty, p.realized_pnl, p.fees) for p in positions),
        "fills": sorted((f.fill_id, f.order_id, f.price, f.qty, f.fee) for f in fills),
    }


@pytest.mark.parametrize("durability", ["fsync", "process"])
def test_sigkill_loses_no_acknowledged_order_or_fill(tmp_path: Path, durability: str) -> None:
    daemon = start_daemon(tmp_path / "home", "--no-simulate", "--durability", durability)
    stub = pb_grpc.OrderServiceStub(daemon.channel())
    acked: list[str] = []
    for i in range(20):
        acked.append(place(stub, daemon, "maker", SELL, f"{3000 + i}.00", "0.5").order_id)
    for i in range(10):
        acked.append(place(stub, daemon, "taker", BUY, f"{3000 + i}.00", "0.3").order_id)
    stub.CancelOrder(pb.CancelOrderRequest(order_id=acked[15]), metadata=daemon.metadata())
    before = snapshot(stub, daemon, acked)
    assert before["fills"], "the crossing orders traded"
    daemon.kill(signal.SIGKILL)

    again = start_daemon(daemon.home, "--no-simulate", "--durability", durability, grpc_port=daemon.grpc_port,
                         http_port=daemon.http_port)
    try:
        stub = pb_grpc.OrderServiceStub(again.channel())
        assert snapshot(stub, again, acked) == before
        # the restarted engine holds the same book: a new buy meets the same resting sells
        reply = stub.PlaceOrder(
            pb.PlaceOrderRequest(account="late", symbol="ETH-USD", side=BUY, price="3019.00", qty="0.1"),
            metadata=again.metadata(),
        )
        assert int(reply.order.order_id) > max(int(i) for i in acked), "order ids never repeat after a restart"
        # ten buys of 0.3 took 3.0 = six asks of 0.5 (3000..3005) before the kill
        assert Decimal(reply.fills[0].price) == Decimal("3006.00"), "best remaining ask after the restart"
    finally:
        again.kill(signal.SIGTERM)


def test_sigkill_under_the_simulated_market_keeps_every_ack(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "home", "--seed", "3")
    stub = pb_grpc.OrderServiceStub(daemon.channel())
    acked = [place(stub, daemon, "u1", BUY, "2900.00", "0.01").order_id for _ in range(30)]
    daemon.kill(signal.SIGKILL)
    again = start_daemon(daemon.home, "--seed", "3", grpc_port=daemon.grpc_port, http_port=daemon.http_port)
    try:
        stub = pb_grpc.OrderServiceStub(again.channel())
        for order_id in acked:
            assert stub.GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=again.metadata()).order.account == "u1"
        listed = stub.ListOrders(pb.ListOrdersRequest(account="u1", page_size=100), metadata=again.metadata()).orders
        assert sorted(o.order_id for o in listed) == sorted(acked)
    finally:
        again.kill(signal.SIGTERM)


def tradsys(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRADSYS_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "tradsys", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_start_detached_status_stop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ports = ["--grpc-port", str(free_port()), "--http-port", str(free_port()), "--no-simulate"]
    started = tradsys(home, "daemon", "start", "--detach", *ports)
    assert started.returncode == 0, started.stderr
    assert "daemon started: pid" in started.stdout
    try:
        status = tradsys(home, "daemon", "status", "--json")
        assert status.returncode == 0
        doc = json.loads(status.stdout)
        assert doc["running"] and doc["health"]["status"] == "ok" and doc["grpc_health"] == "SERVING"
        again = tradsys(home, "daemon", "start", "--detach", *ports)
        assert again.returncode == 1 and "already running" in again.stderr
        assert (home / "secret.key").stat().st_mode & 0o777 == 0o600
        assert (home / "admin.token").stat().st_mode & 0o777 == 0o600
    finally:
        stopped = tradsys(home, "daemon", "stop")
    assert stopped.returncode == 0 and "daemon stopped" in stopped.stdout
    after = tradsys(home, "daemon", "status")
    assert after.returncode == 3 and "not running" in after.stdout
    assert "daemon.stopped" in (home / "logs" / "daemon.log").read_text()


@pytest.mark.parametrize("which", ["grpc", "http"])
def test_port_in_use_is_a_clear_error(tmp_path: Path, which: str) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        other = free_port()
        grpc_port, http_port = (busy, other) if which == "grpc" else (other, busy)
        result = tradsys(tmp_path / "home", "daemon", "start", "--no-simulate", "--grpc-port", str(grpc_port),
                         "--http-port", str(http_port))
    assert result.returncode == 1
    assert str(busy) in result.stderr and ("in use" in result.stderr or "address already in use" in result.stderr.lower())
    assert "Traceback" not in result.stderr


def test_order_entry_stream_acks_batches_in_order(daemon: DaemonProcess) -> None:
    stub = pb_grpc.OrderServiceStub(daemon.channel())
    market = md_grpc.MarketDataServiceStub(daemon.channel())
    book = eventually(lambda: market.GetBook(md.GetBookRequest(symbol="SOL-USD"), metadata=daemon.metadata()).book.bids)
    price = Decimal(book[0].price) - 1

    def batches():  # type: ignore[no-untyped-def]
        for seq in range(1, 4):
            requests = [
                pb.OrderRequest(place=pb.PlaceOrderRequest(account="hft", symbol="SOL-USD", side=BUY,
                                                           price=str(price), qty="0.10"))
                for _ in range(50)
            ]
            requests.append(pb.OrderRequest(place=pb.PlaceOrderRequest(account="hft", symbol="SOL-USD", side=BUY,
                                                                       price=f"{price}1", qty="0.10")))
            requests.append(pb.OrderRequest(cancel=pb.CancelOrderRequest(order_id="no-such-order")))
            yield pb.OrderBatch(seq=seq, requests=requests)

    acks = list(stub.OrderEntry(batches(), metadata=daemon.metadata()))
    assert [a.seq for a in acks] == [1, 2, 3]
    for ack in acks:
        assert len(ack.results) == 52
        assert all(r.status == common.ORDER_STATUS_NEW and r.order_id for r in ack.results[:50])
        assert ack.results[50].error.code == common.ERROR_CODE_INVALID_ARGUMENT
        assert "price_precision" in ack.results[50].error.message
        assert ack.results[51].error.code == common.ERROR_CODE_NOT_FOUND
    ids = [r.order_id for a in acks for r in a.results[:50]]
    assert len(set(ids)) == 150
    twice = [pb.OrderRequest(cancel=pb.CancelOrderRequest(order_id=ids[0]))] * 2
    (ack,) = stub.OrderEntry(iter([pb.OrderBatch(seq=4, requests=twice)]), metadata=daemon.metadata())
    closed = ack.results[1].error
    assert closed.code == common.ERROR_CODE_ORDER_CLOSED and "order_closed" in closed.message, closed


def test_unauthenticated_order_entry_is_refused(daemon: DaemonProcess) -> None:
    stub = pb_grpc.OrderServiceStub(daemon.channel())
    with pytest.raises(grpc.RpcError) as err:
        list(stub.OrderEntry(iter([pb.OrderBatch(seq=1)])))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_market_driven_by_replay_data(tmp_path: Path) -> None:
    data = Path(__file__).parents[2] / "examples" / "data" / "btc_trades.parquet"
    daemon = start_daemon(tmp_path / "home", "--replay-data", str(data), "--replay-speed", "60")
    try:
        market = md_grpc.MarketDataServiceStub(daemon.channel())
        trades = eventually(lambda: market.GetTrades(md.GetTradesRequest(symbol="BTC-USD", limit=5),
                                                     metadata=daemon.metadata()).trades, timeout=20)
        assert all(Decimal(t.price) > 0 for t in trades)
    finally:
        daemon.kill(signal.SIGTERM)


def test_sigusr1_dumps_every_threads_stack_and_the_daemon_keeps_serving(daemon: DaemonProcess) -> None:
    """What a stuck daemon shows an operator (and the test harness, before it kills one that will not stop)."""
    daemon.proc.send_signal(signal.SIGUSR1)
    dump = eventually(lambda: dumped(daemon.log.read_text(errors="replace")), timeout=10)
    assert "/tradsys/" in dump, "the stacks name the daemon's own code"
    stub = md_grpc.MarketDataServiceStub(daemon.channel())
    assert stub.GetBook(md.GetBookRequest(symbol="BTC-USD", depth=1), metadata=daemon.metadata(), timeout=10).book.bids


RACE = """
import signal, threading
from tradsys.daemon.app import Daemon
from tradsys.daemon.config import load_config


class Racy(threading.Event):
    def wait(self, timeout=None):
        with self._cond:  # the signal lands while this thread holds the Event's own lock
            signal.raise_signal(signal.SIGTERM)
        return super().wait(timeout)


daemon = Daemon(load_config())
daemon._stopped = Racy()
daemon.stop = lambda: print("stopped", flush=True)
daemon.wait()
"""


def test_sigterm_stops_the_daemon_even_when_it_lands_inside_the_wait(tmp_path: Path) -> None:
    """A daemon once ignored SIGTERM for good: its handler set the Event the main thread was waiting on,
    and the signal had come while that thread held the Event's lock."""
    done = subprocess.run([sys.executable, "-c", RACE], env={**os.environ, "TRADSYS_HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "stopped\n", done.stderr
