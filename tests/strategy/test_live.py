"""Live strategies in a real daemon: start over gRPC and the CLI, see quotes and fills, stop, restart."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import eventually, start_daemon
from tradsys.proto import common_pb2, orders_pb2, orders_pb2_grpc
from tradsys.proto import strategy_pb2 as pb
from tradsys.proto import strategy_pb2_grpc as pb_grpc

OPEN = [common_pb2.ORDER_STATUS_NEW, common_pb2.ORDER_STATUS_PARTIALLY_FILLED]


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tradsys", "strategy", *args], capture_output=True, text=True,
                          env={**os.environ, "TRADSYS_HOME": str(home)}, timeout=60)


def test_live_strategy_lifecycle(tmp_path: Path) -> None:
    home = tmp_path / "home"
    daemon = start_daemon(home, "--seed", "5")
    try:
        md = daemon.metadata()
        stub = pb_grpc.StrategyServiceStub(daemon.channel())
        orders = orders_pb2_grpc.OrderServiceStub(daemon.channel())
        kinds = eventually(lambda: stub.ListStrategies(pb.ListStrategiesRequest(), metadata=md, timeout=5).kinds)
        mm = next(k for k in kinds if k.kind == "market_making")
        assert {p.name for p in mm.params} >= {"spread_bps", "quantity", "max_position", "refresh_seconds"}

        listed = cli(home, "list")
        assert listed.returncode == 0 and "sma_cross" in listed.stdout
        bad = cli(home, "start", "market_making", "--param", "spread_bps=wide")
        assert bad.returncode == 2 and "spread_bps" in bad.stderr  # a bad value the user typed: a usage error

        started = cli(home, "start", "market_making", "--param", "spread_bps=1", "--param", "quantity=0.01",
                      "--param", "refresh_seconds=0.5s", "--param", "max_position=1", "--json")
        assert started.returncode == 0, started.stderr
        status = json.loads(started.stdout)
        sid, account = status["id"], status["account"]
        assert status["state"] == "STATE_RUNNING" and status["params"]["spread_bps"] == "1"

        def quoting() -> bool:
            reply = orders.ListOrders(orders_pb2.ListOrdersRequest(account=account, statuses=OPEN), metadata=md, timeout=5)
            return sorted(o.side for o in reply.orders) == [common_pb2.SIDE_BUY, common_pb2.SIDE_SELL]

        eventually(quoting, timeout=20)

        def traded() -> bool:
            fills = orders.ListFills(orders_pb2.ListFillsRequest(account=account), metadata=md, timeout=5)
            return len(fills.fills) > 0

        eventually(traded, timeout=60, interval=0.5)
        shown = cli(home, "status", sid, "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["pnl"] != ""

        # a restart keeps the running instance and its config
        daemon.kill(signal.SIGTERM)
        daemon = start_daemon(home, "--seed", "5", grpc_port=daemon.grpc_port)
        stub = pb_grpc.StrategyServiceStub(daemon.channel())
        orders = orders_pb2_grpc.OrderServiceStub(daemon.channel())
        restored = eventually(lambda: stub.GetStrategyStatus(pb.GetStrategyStatusRequest(id=sid), metadata=md, timeout=5).status)
        assert restored.state == pb.StrategyStatus.STATE_RUNNING
        assert restored.account == account and restored.params["refresh_seconds"] == "0.5s"
        eventually(quoting, timeout=20)

        stopped = cli(home, "stop", sid)
        assert stopped.returncode == 0, stopped.stderr
        eventually(lambda: not orders.ListOrders(orders_pb2.ListOrdersRequest(account=account, statuses=OPEN),
                                                 metadata=md, timeout=5).orders)
        running = stub.ListRunning(pb.ListRunningRequest(), metadata=md, timeout=5).strategies
        assert [s.state for s in running if s.id == sid] == [pb.StrategyStatus.STATE_STOPPED]
        assert cli(home, "stop", "999").returncode == 2, "an unknown id is a usage error (2), not an auth error (4)"
    finally:
        if daemon.proc.poll() is None:
            daemon.kill(signal.SIGTERM)
