"""Who reads and trades which account, on every transport of a real daemon over loopback.

The rule (`tradsys/daemon/auth.py`): an account's orders, fills, positions and order events are
read, and (by a trader) traded, only through a token that names the account; admin tokens and
tokens naming "*" cover every account; a viewer token naming none reads market data only.
"""

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from websockets.asyncio.client import connect

from tests.conftest import DaemonProcess, start_daemon
from tradsys.daemon.auth import issue_token
from tradsys.proto import common_pb2 as common
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc

BUY, SELL = common.SIDE_BUY, common.SIDE_SELL
ACCOUNTS = ("alice", "bob")


@dataclass
class World:
    daemon: DaemonProcess
    stub: pb_grpc.OrderServiceStub
    resting: dict[str, str]
    """A resting order of each account, by account."""

    def meta(self, role: str = "admin", accounts: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token(role, accounts)}"),)

    def token(self, role: str, accounts: tuple[str, ...]) -> str:
        secret = bytes.fromhex((self.daemon.home / "secret.key").read_text().strip())
        return issue_token(secret, role, accounts)

    def trade_round(self) -> None:
        """bob rests a sell, alice takes it: order events and position updates for both accounts."""
        admin = self.meta()
        self.stub.PlaceOrder(pb.PlaceOrderRequest(account="bob", symbol="ETH-USD", side=SELL, qty="0.01",
                                                  price="100"), metadata=admin, timeout=10)
        self.stub.PlaceOrder(pb.PlaceOrderRequest(account="alice", symbol="ETH-USD", side=BUY, qty="0.01",
                                                  price="100", tif=common.TIME_IN_FORCE_IOC), metadata=admin, timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A quiet daemon (no simulated market) where alice and bob have traded and each has an order resting."""
    home: Path = tmp_path_factory.mktemp("authz")
    daemon = start_daemon(home, "--no-simulate")
    channel = daemon.channel()
    world = World(daemon, pb_grpc.OrderServiceStub(channel), {})
    world.trade_round()
    for account, side, price in (("alice", BUY, "96"), ("bob", SELL, "104")):
        world.resting[account] = world.stub.PlaceOrder(pb.PlaceOrderRequest(
            account=account, symbol="ETH-USD", side=side, qty="0.01", price=price), metadata=world.meta()).order.order_id
    yield world
    channel.close()
    daemon.kill(15)


# (role, accounts named by the token, accounts it reads)
TOKENS = [
    ("trader", ("alice",), {"alice"}),
    ("trader", ("alice", "carol"), {"alice"}),
    ("viewer", ("alice",), {"alice"}),
    ("viewer", ("*",), {"alice", "bob"}),
    ("viewer", (), set()),
    ("trader", ("*",), {"alice", "bob"}),
    ("admin", ("*",), {"alice", "bob"}),
]
IDS = ["trader-alice", "trader-alice,carol", "viewer-alice", "viewer-*", "viewer-none", "trader-*", "admin"]


def refused(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


# -- gRPC reads ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "accounts", "reads"), TOKENS, ids=IDS)
def test_grpc_reads_follow_the_token(world: World, role: str, accounts: tuple[str, ...], reads: set[str]) -> None:
    stub, meta = world.stub, world.meta(role, accounts)
    for account in ACCOUNTS:
        calls: dict[str, Callable[[], list[Any]]] = {
            "GetOrder": lambda: [stub.GetOrder(pb.GetOrderRequest(order_id=world.resting[account]), metadata=meta).order],
            "ListOrders": lambda: list(stub.ListOrders(pb.ListOrdersRequest(account=account), metadata=meta).orders),
            "ListFills": lambda: list(stub.ListFills(pb.ListFillsRequest(account=account), metadata=meta).fills),
            "GetPositions": lambda: list(stub.GetPositions(pb.GetPositionsRequest(account=account),
                                                           metadata=meta).positions),
        }
        for name, call in calls.items():
            if account in reads:
                got = call()
                assert got and {item.account for item in got} == {account}, (name, account)
            else:
                err = refused(call)
                assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (name, account, err.details())
                assert f"may read {'accounts [' if accounts else 'no accounts'}" in err.details()
                assert err.details().endswith(f"not {account}"), err.details()

    unnamed = {
        "ListOrders": lambda: stub.ListOrders(pb.ListOrdersRequest(), metadata=meta).orders,
        "GetPositions": lambda: stub.GetPositions(pb.GetPositionsRequest(), metadata=meta).positions,
    }
    for name, call in unnamed.items():
        if not accounts:
            err = refused(call)
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "names no accounts" in err.details(), name
        elif len(accounts) > 1:
            err = refused(call)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "account is required" in err.details(), name
        else:
            assert {item.account for item in call()} == reads, name


@pytest.mark.parametrize(("role", "accounts", "reads"), TOKENS, ids=IDS)
def test_grpc_order_event_stream_follows_the_token(world: World, role: str, accounts: tuple[str, ...],
                                                   reads: set[str]) -> None:
    meta = world.meta(role, accounts)
    for account in ("bob", ""):
        stream = world.stub.StreamOrderEvents(pb.StreamOrderEventsRequest(account=account), metadata=meta, timeout=60)
        if not account and len(accounts) > 1:
            assert refused(lambda: next(stream)).code() == grpc.StatusCode.INVALID_ARGUMENT, "which account?"
            continue
        wanted = {account} if account else reads
        if not wanted or not wanted <= reads:
            err = refused(lambda: next(stream))
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (account, err.details())
            continue
        seen = follow(stream, world, lambda e: e.order.account, lambda e: e.order.order_id)
        assert seen == wanted, account


def follow(stream: Any, world: World, account_of: Callable[[Any], str], order_of: Callable[[Any], str]) -> set[str]:
    """Accounts of the events a stream delivers over three complete trade rounds."""
    seen: list[Any] = []
    enough = threading.Event()

    def read() -> None:
        try:
            for event in stream:
                seen.append(event)
                if len(rounds(seen, account_of, order_of)) >= 3:
                    enough.set()
        except grpc.RpcError:
            enough.set()

    threading.Thread(target=read, daemon=True).start()
    for _ in range(200):  # the server subscribes when it sees the call: trade until three rounds came
        world.trade_round()
        if enough.wait(0.05):
            break
    stream.cancel()
    assert enough.is_set(), "no events"
    return {account_of(e) for e in seen}


def rounds(events: list[Any], account_of: Callable[[Any], str], order_of: Callable[[Any], str]) -> set[str]:
    """The trade rounds whose events were seen, by the order ids of the account that was seen first:
    once three are, the middle one was published whole after the subscription."""
    first = account_of(events[0]) if events else None
    return {order_of(e) for e in events if account_of(e) == first}


# -- WebSocket reads -------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "accounts", "reads"), TOKENS, ids=IDS)
def test_ws_order_and_position_channels_follow_the_token(world: World, role: str, accounts: tuple[str, ...],
                                                         reads: set[str]) -> None:
    async def main() -> set[tuple[str, str]]:
        url = f"ws://{world.daemon.http}/ws?token={world.token(role, accounts)}"
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "channels": ["orders", "positions"]}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if not reads:
                assert reply["type"] == "error" and reply["error"]["code"] == "permission_denied", reply
                assert "names no accounts" in reply["error"]["message"]
                return set()
            assert reply["result"]["channels"] == ["orders", "positions"], reply
            pushes: list[dict[str, Any]] = []
            for _ in range(200):
                await asyncio.to_thread(world.trade_round)
                while True:
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 0.05))
                    except TimeoutError:
                        break
                    pushes += msg["items"] if msg["type"] == "batch" else [msg]
                events = [p["data"] for p in pushes if p["type"] == "order_event"]
                if len(rounds(events, lambda e: e["order"]["account"], lambda e: e["order"]["id"])) >= 3:
                    break
            return {(p["type"], (p["data"].get("order") or p["data"])["account"]) for p in pushes}

    seen = asyncio.run(asyncio.wait_for(main(), 120))
    assert seen == {(kind, account) for kind in ("order_event", "position") for account in reads}
