"""Disk faults: a full disk or a read-only database refuses orders with a clear reason, keeps
serving reads, and heals; a damaged journal is detected on start, never silently skipped."""

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

from tests.conftest import DaemonProcess, eventually, start_daemon
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc

BUY, SELL = common.SIDE_BUY, common.SIDE_SELL
WRITE_FAULT = "the database cannot be written (disk I/O error)"


def place(d: DaemonProcess, side: int, price: str, qty: str = "0.5", account: str = "a") -> pb.PlaceOrderResponse:
    return pb_grpc.OrderServiceStub(d.channel()).PlaceOrder(
        pb.PlaceOrderRequest(account=account, symbol="ETH-USD", side=side, price=price, qty=qty),
        metadata=d.metadata(), timeout=20)


def health(d: DaemonProcess) -> dict:
    try:
        return json.loads(urllib.request.urlopen(f"http://{d.http}/health", timeout=5).read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def book(d: DaemonProcess) -> tuple:
    b = md_grpc.MarketDataServiceStub(d.channel()).GetBook(md.GetBookRequest(symbol="ETH-USD"), metadata=d.metadata()).book
    return tuple((x.price, x.qty) for x in b.bids), tuple((x.price, x.qty) for x in b.asks)


def set_file_size_limit(pid: int, soft: int) -> None:
    """RLIMIT_FSIZE on the daemon: every write past `soft` bytes fails (EFBIG), as on a full disk."""
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, resource.RLIM_INFINITY))


def disk_full(d: DaemonProcess, on: bool) -> None:
    if d.proc.poll() is None:
        set_file_size_limit(d.proc.pid, 1 if on else resource.RLIM_INFINITY)


def read_only(d: DaemonProcess, on: bool) -> None:
    """The database files immutable (`chattr +i`): even root's writes through open files fail (EPERM)."""
    for path in (d.home / "tradsys.db", d.home / "tradsys.db-wal"):
        if on or path.exists():
            subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)


@pytest.mark.parametrize("fault", [
    disk_full,
    pytest.param(read_only, marks=pytest.mark.skipif(shutil.which("chattr") is None,
                                                     reason="needs chattr (e2fsprogs)")),
])
def test_write_fault_refuses_orders_serves_reads_and_heals(
    tmp_path: Path, fault: Callable[[DaemonProcess, bool], None],
) -> None:
    d = start_daemon(tmp_path / "home", "--no-simulate")
    try:
        resting = place(d, SELL, "3000.00").order.order_id
        before = book(d)
        fault(d, True)
        with pytest.raises(grpc.RpcError) as err:
            place(d, BUY, "3000.00", "0.2", "b")  # would trade against the resting sell
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        # EFBIG reaches SQLite as an I/O error (ENOSPC would say "disk is full"): either way, said plainly
        assert WRITE_FAULT in err.value.details(), err.value.details()
        # later orders are refused up front, with the same reason
        with pytest.raises(grpc.RpcError) as err:
            place(d, SELL, "3001.00")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "new orders are refused" in err.value.details()
        # reads go on, and show nothing of the refused orders
        report = health(d)
        assert report["status"] == "degraded" and WRITE_FAULT in report["components"]["store"]
        stub = pb_grpc.OrderServiceStub(d.channel())
        order = stub.GetOrder(pb.GetOrderRequest(order_id=resting), metadata=d.metadata()).order
        assert order.status == common.ORDER_STATUS_NEW and order.filled_qty in ("0", "")
        assert book(d) == before, "the refused order's in-memory effects were undone"
        assert d.proc.poll() is None

        fault(d, False)
        reply = eventually(lambda: place(d, BUY, "3000.00", "0.2", "b"), timeout=15)
        assert reply.fills and reply.fills[0].price.startswith("3000")
        assert health(d)["status"] == "ok"
        listed = stub.ListOrders(pb.ListOrdersRequest(), metadata=d.metadata()).orders
        assert len(listed) == 2, "refused orders left no trace"
    finally:
        fault(d, False)
        if d.proc.poll() is None:
            d.kill(signal.SIGTERM)


def _restart_cli(home: Path, d: DaemonProcess) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRADSYS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "tradsys", "daemon", "start", "--no-simulate", "--grpc-port", str(d.grpc_port),
         "--http-port", str(d.http_port)], env=env, capture_output=True, text=True, timeout=60)


def test_corrupt_last_journal_record_is_refused_on_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = start_daemon(home, "--no-simulate")
    for i in range(5):
        place(d, SELL, f"{3000 + i}.00")
    d.kill(signal.SIGKILL)
    db = home / "tradsys.db"
    with sqlite3.connect(db) as conn:
        (last,) = conn.execute("SELECT max(seq) FROM journal").fetchone()
        conn.execute("UPDATE journal SET command = substr(command, 1, 17) WHERE seq = ?", (last,))
    result = _restart_cli(home, d)
    assert result.returncode == 1
    assert f"journal row {last}" in result.stderr and "corrupt" in result.stderr
    assert "Traceback" not in result.stderr


def test_torn_write_after_the_last_commit_loses_nothing(tmp_path: Path) -> None:
    """A partial WAL frame past the last fsync'd commit (a write torn by the crash) is ignored by
    SQLite's checksums: every acknowledged order is still there."""
    home = tmp_path / "home"
    d = start_daemon(home, "--no-simulate")
    ids = [place(d, SELL, f"{3000 + i}.00").order.order_id for i in range(20)]
    d.kill(signal.SIGKILL)
    wal = home / "tradsys.db-wal"
    assert wal.exists() and wal.stat().st_size > 0
    with open(wal, "ab") as f:
        f.write(os.urandom(3000))
    again = start_daemon(home, "--no-simulate", grpc_port=d.grpc_port, http_port=d.http_port)
    try:
        stub = pb_grpc.OrderServiceStub(again.channel())
        listed = stub.ListOrders(pb.ListOrdersRequest(account="a", page_size=100), metadata=again.metadata()).orders
        assert sorted(o.order_id for o in listed) == sorted(ids)
        assert len(book(again)[1]) == 20
    finally:
        again.kill(signal.SIGTERM)
