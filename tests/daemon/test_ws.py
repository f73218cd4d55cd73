"""/ws (JSON) and /ws/v2 (protobuf) against a real daemon over loopback, plus the inbox they read from."""

import asyncio
import json
import re
import socket
import time
import urllib.request
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import DaemonProcess, quoted_daemon
from tradsys.daemon.auth import issue_token
from tradsys.daemon.hub import LAGGING, LoopInbox
from tradsys.daemon.ws import CLOSE_FLOOD, CLOSE_UNAUTHORIZED
from tradsys.daemon.ws_channels import SNAP, conflate
from tradsys.proto import common_pb2 as common
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import ws_pb2

CONFIG = """
[ws]
queue = 64
send_timeout = 1.0
send_buffer = 4096
rate = 50
burst = 50
flood_close = 100
max_frame = 65536
"""


@pytest.fixture(scope="module")
def wsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    yield from quoted_daemon(tmp_path_factory.mktemp("wshome"), CONFIG, "--seed", "11")


def token(d: DaemonProcess, role: str, *accounts: str) -> str:
    return issue_token(_secret(d), role, accounts=accounts)


def _secret(d: DaemonProcess) -> bytes:
    return bytes.fromhex((d.home / "secret.key").read_text().strip())


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def request(ws: ClientConnection, msg: dict[str, Any]) -> dict[str, Any]:
    """Send a request and return its reply, skipping pushes."""
    await ws.send(json.dumps(msg))
    return await until(ws, lambda m: m.get("id") == msg["id"] and m["type"] in ("result", "error", "pong"))


_pending: dict[int, deque[dict[str, Any]]] = {}


async def next_msg(ws: ClientConnection) -> dict[str, Any]:
    """The next message, batches unpacked in order."""
    pending = _pending.setdefault(id(ws), deque())
    while not pending:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
        pending.extend(msg["items"] if msg.get("type") == "batch" else [msg])
    return pending.popleft()


async def until(ws: ClientConnection, match: Any, limit: int = 5000) -> dict[str, Any]:
    for _ in range(limit):
        msg = await next_msg(ws)
        if match(msg):
            return msg
    raise AssertionError("no matching message")


async def close_code(ws: ClientConnection) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 20)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


def metric(d: DaemonProcess, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"http://{d.http}/metrics").read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        m = re.match(rf"{name}(?:{{(.*)}})? (\S+)$", line)
        if m and (m.group(1) or "") == want:
            return float(m.group(2))
    return 0.0


async def bid(ws: ClientConnection) -> Decimal:
    await request(ws, {"type": "subscribe", "id": "bid", "channels": ["book:BTC-USD"]})
    snap = await until(ws, lambda m: m["type"] == "book_snapshot" and m["data"]["bids"])
    await request(ws, {"type": "unsubscribe", "id": "unbid", "channels": ["book:BTC-USD"]})
    return Decimal(snap["data"]["bids"][0][0])


# -- auth ------------------------------------------------------------------------------------------


def test_auth_by_query_and_by_message(wsd: DaemonProcess) -> None:
    async def main() -> None:
        async with connect(f"ws://{wsd.http}/ws?token={token(wsd, 'viewer')}") as ws:
            reply = await request(ws, {"type": "subscribe", "id": 1, "channels": ["trades:BTC-USD"]})
            assert reply == {"type": "result", "id": 1, "result": {"channels": ["trades:BTC-USD"]}}
        async with connect(f"ws://{wsd.http}/ws") as ws:
            refused = await request(ws, {"type": "subscribe", "id": 1, "channels": ["alerts"]})
            assert refused["error"]["code"] == "unauthenticated"
            reply = await request(ws, {"type": "auth", "id": 2, "token": token(wsd, "trader", "alice")})
            assert reply["result"]["subject"] == "cli" and reply["result"]["accounts"] == ["alice"]
            assert reply["result"]["role"] == "trader"
            reply = await request(ws, {"type": "subscribe", "id": 3, "channels": ["alerts"]})
            assert reply["result"] == {"channels": ["alerts"]}

    run(main())


@pytest.mark.parametrize("bad", ["garbage", "expired", "wrong-secret"])
def test_bad_token_gets_an_error_then_close_4001(wsd: DaemonProcess, bad: str) -> None:
    now = datetime.now(UTC)
    tokens = {
        "garbage": "not.a.jwt",
        "expired": jwt.encode({"sub": "x", "role": "viewer", "iat": now - timedelta(hours=2), "jti": "j",
                               "exp": now - timedelta(hours=1)}, _secret(wsd), algorithm="HS256"),
        "wrong-secret": issue_token(b"\x01" * 32, "admin"),
    }

    async def main() -> None:
        async with connect(f"ws://{wsd.http}/ws?token={tokens[bad]}") as ws:
            msg = await next_msg(ws)
            assert msg["type"] == "error" and msg["error"]["code"] == "unauthenticated"
            assert await close_code(ws) == CLOSE_UNAUTHORIZED
        async with connect(f"ws://{wsd.http}/ws") as ws:
            await ws.send(json.dumps({"type": "auth", "id": 9, "token": tokens[bad]}))
            msg = await next_msg(ws)
            assert msg["id"] == 9 and msg["error"]["code"] == "unauthenticated"
            assert await close_code(ws) == CLOSE_UNAUTHORIZED

    run(main())


# -- channels --------------------------------------------------------------------------------------


def test_subscribe_and_unsubscribe_reply_by_id(wsd: DaemonProcess) -> None:
    async def main() -> None:
        async with connect(f"ws://{wsd.http}/ws?token={token(wsd, 'viewer')}") as ws:
            r = await request(ws, {"type": "subscribe", "id": "a", "channels": ["trades:ETH-USD", "bars:BTC-USD:1m"]})
            assert r["result"]["channels"] == ["bars:BTC-USD:1m", "trades:ETH-USD"]
            r = await request(ws, {"type": "subscribe", "id": "b", "channels": ["book:NOPE"]})
            assert r["type"] == "error" and r["error"]["code"] == "not_found" and "book:SYM" in r["error"]["message"]
            r = await request(ws, {"type": "subscribe", "id": "c", "channels": ["bars:BTC-USD:7m"]})
            assert r["error"]["code"] == "not_found"
            r = await request(ws, {"type": "unsubscribe", "id": "d", "channels": ["trades:ETH-USD", "never"]})
            assert r["result"]["channels"] == ["bars:BTC-USD:1m"]
            r = await request(ws, {"type": "ping", "id": "e", "ts_ns": 5})
            assert r["type"] == "pong" and r["ts_ns"] == 5 and r["responder_ts_ns"] > 0

    run(main())


def test_book_snapshot_then_gapless_updates_and_trades(wsd: DaemonProcess) -> None:
    async def main() -> None:
        async with connect(f"ws://{wsd.http}/ws?token={token(wsd, 'viewer')}") as ws:
            await request(ws, {"type": "subscribe", "id": 1, "channels": ["book:BTC-USD", "trades:BTC-USD"]})
            snap = await until(ws, lambda m: m["type"] == "book_snapshot")
            assert snap["channel"] == "book:BTC-USD" and snap["data"]["bids"] and snap["data"]["asks"]
            seq, updates, trades = snap["data"]["seq"], 0, 0
            while updates < 15 or trades < 3:
                msg = await next_msg(ws)
                if msg["type"] == "book_update":
                    assert msg["data"]["seq"] == seq + 1, "a gap in the book's sequence"
                    seq, updates = seq + 1, updates + 1
                elif msg["type"] == "trade":
                    assert msg["channel"] == "trades:BTC-USD" and Decimal(msg["data"]["qty"]) > 0
                    trades += 1
                else:
                    assert msg["type"] != "book_snapshot", "a snapshot without lagging"

    run(main())


def test_place_and_cancel_with_order_events(wsd: DaemonProcess) -> None:
    async def main() -> None:
        async with connect(f"ws://{wsd.http}/ws?token={token(wsd, 'trader', 'alice')}") as ws:
            price = (await bid(ws) * Decimal("0.98")).quantize(Decimal(1))
            await request(ws, {"type": "subscribe", "id": 1, "channels": ["orders"]})
            await ws.send(json.dumps({"type": "place", "id": 2, "order": {
                "symbol": "BTC-USD", "side": "buy", "qty": "0.01", "price": str(price), "client_id": "ws-1"}}))
            replies: dict[int, dict[str, Any]] = {}
            events: list[dict[str, Any]] = []
            # by kind: an event's order is its state when published, which may already be later
            while "cancelled" not in [e["kind"] for e in events]:
                msg = await next_msg(ws)
                if msg["type"] == "order_event":
                    assert msg["data"]["order"]["account"] == "alice", "another account's order event"
                    events.append(msg["data"])
                elif msg["type"] == "result" and msg["id"] == 2:
                    order = msg["result"]["order"]
                    assert order["account"] == "alice" and order["status"] == "new" and order["client_id"] == "ws-1"
                    await ws.send(json.dumps({"type": "cancel", "id": 3, "order_id": order["id"]}))
                elif msg["type"] in ("result", "error"):
                    replies[msg["id"]] = msg
            if 3 not in replies:
                replies[3] = await until(ws, lambda m: m.get("id") == 3)
            assert replies[3]["result"]["order"]["status"] == "cancelled"
            kinds = [e["kind"] for e in events if e["order"]["id"] == order["id"]]
            assert kinds == ["accepted", "cancelled"]
            rejected = await request(ws, {"type": "place", "id": 4, "order": {
                "symbol": "BTC-USD", "side": "buy", "qty": "0.01", "price": "1"}})
            assert rejected["error"]["code"] == "risk_rejected" and rejected["error"]["reason"] == "price_band"

    run(main())


def test_trader_refused_on_another_account(wsd: DaemonProcess) -> None:
    async def main() -> None:
        async with connect(f"ws://{wsd.http}/ws?token={token(wsd, 'admin')}") as admin:
            price = (await bid(admin) * Decimal("0.98")).quantize(Decimal(1))
            bobs = await request(admin, {"type": "place", "id": 1, "order": {
                "account": "bob", "symbol": "BTC-USD", "side": "buy", "qty": "0.01", "price": str(price)}})
            bob_order = bobs["result"]["order"]["id"]
        async with connect(f"ws://{wsd.http}/ws?token={token(wsd, 'trader', 'alice')}") as ws:
            r = await request(ws, {"type": "place", "id": 1, "order": {
                "account": "bob", "symbol": "BTC-USD", "side": "buy", "qty": "0.01", "price": str(price)}})
            assert r["error"]["code"] == "permission_denied" and "bob" in r["error"]["message"]
            r = await request(ws, {"type": "cancel", "id": 2, "order_id": bob_order})
            assert r["error"]["code"] == "permission_denied"
        async with connect(f"ws://{wsd.http}/ws?token={token(wsd, 'viewer')}") as ws:
            r = await request(ws, {"type": "place", "id": 1, "order": {
                "account": "bob", "symbol": "BTC-USD", "side": "buy", "qty": "0.01", "price": str(price)}})
            assert r["error"]["code"] == "permission_denied"

    run(main())


# -- bad and slow clients --------------------------------------------------------------------------


def test_bad_frames_are_answered_or_closed_while_others_keep_receiving(wsd: DaemonProcess) -> None:
    async def main() -> None:
        url = f"ws://{wsd.http}/ws?token={token(wsd, 'viewer')}"
        async with connect(url) as watcher:
            await request(watcher, {"type": "subscribe", "id": 1, "channels": ["trades:BTC-USD"]})
            async with connect(url, max_queue=None) as bad:
                for frame, code in [("{not json", "invalid_argument"), ("[1, 2]", "invalid_argument"),
                                    (json.dumps({"type": "launch", "id": 7}), "unsupported"),
                                    (b"\x00binary", "invalid_argument"),
                                    (json.dumps({"type": "place", "id": 8, "order": {"qty": 0.1}}), "invalid_argument")]:
                    await bad.send(frame)
                    msg = await next_msg(bad)
                    assert msg["type"] == "error" and msg["error"]["code"] == code, (frame, msg)
                assert (await request(bad, {"type": "ping", "id": 1}))["type"] == "pong"
            async with connect(url, max_size=None) as big:
                await big.send("x" * 70_000)
                assert await close_code(big) == 1009
            async with connect(url, max_queue=None) as flood:  # reads every reply: a flood, not a slow reader
                try:
                    for i in range(3000):
                        await flood.send(json.dumps({"type": "ping", "id": i}))
                except ConnectionClosed:
                    pass
                assert await close_code(flood) == CLOSE_FLOOD
            before = await until(watcher, lambda m: m["type"] == "trade")
            after = await until(watcher, lambda m: m["type"] == "trade")
            assert after["data"]["trade_id"] > before["data"]["trade_id"]

    run(main())
    assert metric(wsd, "tradsys_ws_refusals_total", kind="flood") >= 1


def test_a_client_that_never_reads_is_closed_and_others_are_not(wsd: DaemonProcess) -> None:
    channels = [f"{kind}:{s}" for kind in ("book", "trades") for s in ("BTC-USD", "ETH-USD", "SOL-USD")]

    async def main() -> None:
        url = f"ws://{wsd.http}/ws?token={token(wsd, 'viewer')}"
        host, port = wsd.http.split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        async with connect(url) as watcher, connect(url, sock=sock, max_queue=1, compression=None) as slow:
            await request(watcher, {"type": "subscribe", "id": 1, "channels": ["trades:BTC-USD"]})
            await slow.send(json.dumps({"type": "subscribe", "id": 1, "channels": channels}))
            deadline = time.monotonic() + 40
            closed = metric(wsd, "tradsys_ws_slow_clients_total", action="closed")
            while metric(wsd, "tradsys_ws_slow_clients_total", action="closed") <= closed:
                assert time.monotonic() < deadline, "the slow client was never cut off"
                await until(watcher, lambda m: m["type"] == "trade")  # the other client keeps receiving
            code = await close_code(slow)
            assert code in (4008, None)  # None: cut off before the close frame could reach it

    run(main())


# -- /ws/v2 ----------------------------------------------------------------------------------------


def envelope(**kw: Any) -> bytes:
    return ws_pb2.Envelope(**kw).SerializeToString()


def test_v2_protobuf_round_trip_with_compression(wsd: DaemonProcess) -> None:
    async def recv(ws: ClientConnection) -> list[ws_pb2.Envelope]:
        env = ws_pb2.Envelope()
        env.ParseFromString(await asyncio.wait_for(ws.recv(), 20))
        return list(env.batch.items) if env.WhichOneof("body") == "batch" else [env]

    async def reply(ws: ClientConnection, rid: int) -> ws_pb2.Envelope:
        for _ in range(2000):
            for env in await recv(ws):
                if env.id == rid:
                    return env
        raise AssertionError(f"no reply {rid}")

    async def main() -> None:
        async with connect(f"ws://{wsd.http}/ws/v2") as ws:
            assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
            await ws.send(envelope(id=1, type="auth", auth=ws_pb2.AuthRequest(token=token(wsd, "trader", "alice"))))
            auth = await reply(ws, 1)
            assert auth.result.auth.subject == "cli" and list(auth.result.auth.accounts) == ["alice"]
            await ws.send(b"\xff\xff\xff garbage")
            assert (await reply(ws, 0)).error.code == common.ERROR_CODE_INVALID_ARGUMENT
            await ws.send(envelope(id=2, type="book_update"))
            assert (await reply(ws, 2)).error.code == common.ERROR_CODE_UNSUPPORTED
            await ws.send(envelope(id=3, type="subscribe", subscribe=ws_pb2.SubscribeRequest(
                channels=["book:BTC-USD", "trades:BTC-USD", "orders"])))
            assert list((await reply(ws, 3)).result.subscriptions.channels) == ["book:BTC-USD", "orders", "trades:BTC-USD"]
            snap, seq, updates = None, 0, 0
            while updates < 5:
                for env in await recv(ws):
                    if env.type == "book_snapshot":
                        snap, seq = env.book_snapshot, env.book_snapshot.seq
                    elif env.type == "book_update":
                        assert snap is not None and env.book_update.seq == seq + 1
                        seq, updates = seq + 1, updates + 1
            price = (Decimal(snap.bids[0].price) * Decimal("0.98")).quantize(Decimal(1))
            await ws.send(envelope(id=4, type="place", place=pb.PlaceOrderRequest(
                symbol="BTC-USD", side=common.SIDE_BUY, qty="0.01", price=str(price))))
            placed = await reply(ws, 4)
            assert placed.result.place.order.status == common.ORDER_STATUS_NEW
            await ws.send(envelope(id=5, type="cancel", cancel=pb.CancelOrderRequest(order_id=placed.result.place.order.order_id)))
            assert (await reply(ws, 5)).result.cancel.order.status == common.ORDER_STATUS_CANCELLED
            await ws.send(envelope(id=6, type="ping", ping=ws_pb2.Ping(ts_ns=42)))
            assert (await reply(ws, 6)).pong.ts_ns == 42

    run(main())


# -- the inbox -------------------------------------------------------------------------------------


def test_inbox_conflates_book_deltas_and_cuts_off_other_overflow() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        inbox = LoopInbox(loop, woken.set, maxsize=4, conflate=conflate)
        for seq in range(10):
            inbox.put("book:BTC-USD", seq)
        await asyncio.wait_for(woken.wait(), 5)
        items = inbox.drain()
        assert (SNAP, "book:BTC-USD") in items and len(items) <= 4 and inbox.conflations > 0
        assert inbox.closed_reason is None
        for n in range(5):
            inbox.put("trades:BTC-USD", n)
        assert inbox.closed_reason == LAGGING and inbox.drain() == []

    run(main())


def test_conflate_keeps_other_channels_in_order() -> None:
    items = deque([("book:A", 1), ("trades:A", "t1"), ("book:B", 1), ("book:A", 2), ("trades:A", "t2")])
    assert conflate(items)
    assert list(items) == [("trades:A", "t1"), ("trades:A", "t2"), (SNAP, "book:A"), (SNAP, "book:B")]
    assert not conflate(deque([("trades:A", 1), ("orders", 2)]))


def test_leaving_with_orders_in_flight_leaves_the_engine_running(wsd: DaemonProcess) -> None:
    async def main() -> None:
        for _ in range(5):
            async with connect(f"ws://{wsd.http}/ws?token={token(wsd, 'trader', 'alice')}") as ws:
                for i in range(20):
                    await ws.send(json.dumps({"type": "place", "id": i, "order": {
                        "symbol": "BTC-USD", "side": "buy", "qty": "0.001", "price": "1", "tif": "IOC"}}))
            # closed at once: the session's pending requests are cancelled, the engine's futures must not be

    run(main())
    health = json.loads(urllib.request.urlopen(f"http://{wsd.http}/health").read())
    assert health["components"]["engine"] == "running"
