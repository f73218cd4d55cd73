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
from tradsys.proto import ws_pb2

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


# -- order entry -----------------------------------------------------------------------------------

TRANSPORTS = ("unary", "stream", "ws", "ws2")


def enter(world: World, transport: str, token: str, kind: str, body: Any) -> tuple[str, str]:
    """One order-entry request over a transport: ("ok", order id) or (error code name, message)."""
    if transport == "unary":
        call = {"place": world.stub.PlaceOrder, "cancel": world.stub.CancelOrder, "amend": world.stub.AmendOrder,
                "cancel_all": world.stub.CancelAll}[kind]
        meta = (("authorization", f"Bearer {token}"),)
        try:
            reply = call(body, metadata=meta, timeout=10)
        except grpc.RpcError as exc:
            return exc.code().name.lower(), exc.details()
        return "ok", reply.order.order_id if kind != "cancel_all" else ""
    if transport == "stream":
        meta = (("authorization", f"Bearer {token}"),)
        batch = pb.OrderBatch(seq=1, requests=[pb.OrderRequest(**{kind: body})])
        (ack,) = list(world.stub.OrderEntry(iter([batch]), metadata=meta, timeout=10))
        (result,) = ack.results
        if result.status != common.ORDER_STATUS_REJECTED:
            return "ok", result.order_id
        return common.ErrorCode.Name(result.error.code).removeprefix("ERROR_CODE_").lower(), result.error.message
    return asyncio.run(asyncio.wait_for(_enter_ws(world, transport, token, kind, body), 30))


async def _enter_ws(world: World, transport: str, token: str, kind: str, body: Any) -> tuple[str, str]:
    url = f"ws://{world.daemon.http}/{'ws' if transport == 'ws' else 'ws/v2'}?token={token}"
    async with connect(url) as ws:
        if transport == "ws":
            await ws.send(json.dumps({"type": kind, "id": 1, **as_json(kind, body)}))
            reply = json.loads(await ws.recv())
            if reply["type"] == "error":
                return reply["error"]["code"], reply["error"]["message"]
            return "ok", reply["result"].get("order", {}).get("id", "")
        await ws.send(ws_pb2.Envelope(id=1, **{kind: body}).SerializeToString())
        env = ws_pb2.Envelope()
        env.ParseFromString(await ws.recv())
        if env.WhichOneof("body") == "error":
            return common.ErrorCode.Name(env.error.code).removeprefix("ERROR_CODE_").lower(), env.error.message
        result = getattr(env.result, kind)
        return "ok", result.order.order_id if kind != "cancel_all" else ""


def as_json(kind: str, body: Any) -> dict[str, Any]:
    if kind == "place":
        return {"order": {"account": body.account, "symbol": body.symbol, "side": "buy" if body.side == BUY else "sell",
                          "qty": body.qty, "price": body.price}}
    if kind == "cancel_all":
        return {"account": body.account}
    if kind == "amend":
        return {"order_id": body.order_id, "new_open_qty": body.new_open_qty}
    return {"order_id": body.order_id}


def requests_on(world: World, account: str) -> dict[str, Any]:
    order = world.resting[account]
    return {
        "place": pb.PlaceOrderRequest(account=account, symbol="ETH-USD", side=BUY, qty="0.01", price="98"),
        "cancel": pb.CancelOrderRequest(order_id=order),
        "amend": pb.AmendOrderRequest(order_id=order, new_open_qty="0.02"),
        "cancel_all": pb.CancelAllRequest(account=account),
    }


@pytest.mark.parametrize(
    ("role", "accounts", "target", "message"),
    [
        ("trader", ("alice",), "bob", "role trader may trade accounts [alice], not bob"),
        ("viewer", ("alice",), "alice", "role viewer may not trade; needs role trader or admin"),
    ],
    ids=["trader-on-another-account", "viewer-on-its-own-account"],
)
def test_one_refusal_for_trading_without_the_right_on_every_transport(
    world: World, role: str, accounts: tuple[str, ...], target: str, message: str
) -> None:
    token = world.token(role, accounts)
    got = {
        (transport, kind): enter(world, transport, token, kind, body)
        for transport in TRANSPORTS
        for kind, body in requests_on(world, target).items()
        if not (transport == "stream" and kind == "cancel_all")  # not a request of the stream
    }
    assert got == {key: ("permission_denied", message) for key in got}
    order = world.stub.GetOrder(pb.GetOrderRequest(order_id=world.resting[target]), metadata=world.meta()).order
    assert order.status == common.ORDER_STATUS_NEW and order.open_qty == "0.01", "the order is untouched"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_trader_trades_its_own_account_on_every_transport(world: World, transport: str) -> None:
    token = world.token("trader", ("alice",))
    place = pb.PlaceOrderRequest(symbol="ETH-USD", side=BUY, qty="0.01", price="97")
    status, order_id = enter(world, transport, token, "place", place)
    assert status == "ok" and order_id, (status, order_id)
    for kind, body in (("amend", pb.AmendOrderRequest(order_id=order_id, new_open_qty="0.02")),
                       ("cancel", pb.CancelOrderRequest(order_id=order_id))):
        assert enter(world, transport, token, kind, body) == ("ok", order_id), kind
    order = world.stub.GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=world.meta()).order
    assert order.account == "alice" and order.status == common.ORDER_STATUS_CANCELLED
