"""Hostile input against a real daemon: fuzzed /ws JSON, raw bytes on /ws/v2 and gRPC, oversize
frames, connection churn, PeerJS floods, bad JWTs, a trader reaching for another account.

Every case: a clear refusal, the daemon stays up, and a bystander keeps receiving trades.
"""

import asyncio
import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import DaemonProcess, eventually, start_daemon
from tradsys.daemon.auth import issue_token
from tradsys.proto import common_pb2 as common
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc
from tradsys.proto import ws_pb2

CONFIG = """
[ws]
rate = 100000
burst = 100000
flood_close = 100000

[peerjs]
queue_limit = 100
"""
FUZZ = settings(max_examples=120, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
TRIED: dict[str, int] = {}
"""Inputs tried per kind, printed at the end (the README's figures)."""


@pytest.fixture(scope="module")
def hd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home: Path = tmp_path_factory.mktemp("hostile")
    (home / "config.toml").write_text(CONFIG)
    proc = start_daemon(home, "--seed", "5")
    yield proc
    print(f"\nhostile inputs tried: {TRIED}")
    if proc.proc.poll() is None:
        proc.kill(15)


def secret(d: DaemonProcess) -> bytes:
    return bytes.fromhex((d.home / "secret.key").read_text().strip())


def token(d: DaemonProcess, role: str, *accounts: str) -> str:
    return issue_token(secret(d), role, accounts=accounts)


def tried(kind: str, n: int = 1) -> None:
    TRIED[kind] = TRIED.get(kind, 0) + n


def alive(d: DaemonProcess) -> None:
    """The daemon answers health, and a fresh client sees trades flowing."""
    assert d.proc.poll() is None, "the daemon died"
    assert json.loads(urllib.request.urlopen(f"http://{d.http}/health", timeout=5).read())["status"] == "ok"

    async def trades() -> None:
        async with connect(f"ws://{d.http}/ws?token={token(d, 'viewer')}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "channels": ["trades:BTC-USD"]}))
            for _ in range(5000):
                msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
                items = msg["items"] if msg.get("type") == "batch" else [msg]
                if any(m["type"] == "trade" for m in items):
                    return
            raise AssertionError("no trade")

    asyncio.run(asyncio.wait_for(trades(), 30))


class Conn:
    """One long-lived connection for many fuzz examples, reopened when the daemon closes it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.ws: ClientConnection | None = None
        self.closes: list[int | None] = []

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    async def open(self) -> ClientConnection:
        if self.ws is None:
            self.ws = await connect(self.url, max_size=None)
        return self.ws

    async def exchange(self, frame: str | bytes, sentinel: str | bytes, is_sentinel: Any) -> list[Any]:
        """Send `frame`, then a ping; return what came back before the pong (or note the close)."""
        ws = await self.open()
        out: list[Any] = []
        try:
            await ws.send(frame)
            await ws.send(sentinel)
            while True:
                msg = await asyncio.wait_for(ws.recv(), 20)
                if is_sentinel(msg):
                    return out
                out.append(msg)
        except ConnectionClosed as exc:
            self.closes.append(exc.rcvd.code if exc.rcvd else None)
            self.ws = None
            return out

    def close(self) -> None:
        if self.ws is not None:
            self.run(self.ws.close())
        self.loop.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "place", "cancel", "amend", "cancel_all", "ping", "x", ""])},
    optional={"id": json_values, "channels": json_values, "order": json_values, "order_id": json_values,
              "account": json_values, "symbol": json_values, "qty": json_values, "price": json_values,
              "side": st.sampled_from(["buy", "sell", "BUY", "hold"]) | json_values, "new_price": json_values},
)


def test_fuzzed_json_requests_get_replies_never_a_crash(hd: DaemonProcess) -> None:
    conn = Conn(f"ws://{hd.http}/ws?token={token(hd, 'trader', 'fuzz')}")
    is_pong = lambda m: '"pong"' in m and '"sentinel"' in m  # noqa: E731

    @FUZZ
    @given(st.one_of(requests.map(json.dumps), json_values.map(json.dumps), st.text(max_size=200)))
    def fuzz(frame: str) -> None:
        tried("ws_json")
        replies = conn.run(conn.exchange(frame, json.dumps({"type": "ping", "id": "sentinel"}), is_pong))
        for raw in replies:
            msg = json.loads(raw)
            # a fuzzed frame may itself be a ping (then its pong comes back) or subscribe to anything
            assert msg["type"] in ("result", "error", "pong", "batch", "order_event", "book_snapshot", "book_update",
                                   "trade", "bar", "position", "alert"), msg
            if msg["type"] == "error":
                assert msg["error"]["code"] and msg["error"]["message"]

    try:
        fuzz()
    finally:
        conn.close()
    assert not conn.closes, f"connections closed by fuzz input: {conn.closes}"
    alive(hd)


def test_random_bytes_and_envelopes_on_ws_v2(hd: DaemonProcess) -> None:
    conn = Conn(f"ws://{hd.http}/ws/v2?token={token(hd, 'trader', 'fuzz')}")
    sentinel = ws_pb2.Envelope(id=987654321, type="ping", ping=ws_pb2.Ping(ts_ns=1)).SerializeToString()

    def is_pong(frame: bytes) -> bool:
        env = ws_pb2.Envelope()
        env.ParseFromString(frame)
        return env.id == 987654321

    envelopes = st.builds(
        lambda i, kind, raw: ws_pb2.Envelope(id=i, type=kind).SerializeToString() + raw,
        st.integers(0, 2**63 - 1), st.text(max_size=12), st.binary(max_size=64),
    )

    @FUZZ
    @given(st.one_of(st.binary(max_size=512), envelopes, st.text(max_size=50)))
    def fuzz(frame: bytes | str) -> None:
        tried("ws_v2_bytes")
        for raw in conn.run(conn.exchange(frame, sentinel, lambda m: isinstance(m, bytes) and is_pong(m))):
            env = ws_pb2.Envelope()
            env.ParseFromString(raw)
            if env.WhichOneof("body") == "error":
                assert env.error.code != common.ERROR_CODE_UNSPECIFIED and env.error.message

    try:
        fuzz()
    finally:
        conn.close()
    assert not conn.closes, f"connections closed by fuzz input: {conn.closes}"
    alive(hd)


GRPC_METHODS = ["PlaceOrder", "CancelOrder", "AmendOrder", "GetOrder", "ListOrders", "ListFills", "GetPositions"]


def test_random_protobuf_bytes_on_grpc(hd: DaemonProcess) -> None:
    channel = hd.channel()
    calls = {m: channel.unary_unary(f"/tradsys.v1.OrderService/{m}", request_serializer=None,
                                    response_deserializer=None) for m in GRPC_METHODS}
    fine = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.INTERNAL}
    trader = (("authorization", f"Bearer {token(hd, 'trader', 'fuzz')}"),)

    @FUZZ
    @given(st.sampled_from(GRPC_METHODS), st.binary(max_size=256))
    def fuzz(method: str, body: bytes) -> None:
        tried("grpc_bytes")
        try:
            calls[method](body, metadata=trader, timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() in fine, (exc.code(), exc.details())
            if exc.code() == grpc.StatusCode.INTERNAL:  # undecodable request: grpc's own refusal, not our crash
                assert "deserializ" in (exc.details() or "").lower() or "parse" in (exc.details() or "").lower(), exc.details()

    fuzz()
    alive(hd)


def test_oversize_messages_are_refused(hd: DaemonProcess) -> None:
    async def main() -> None:
        async with connect(f"ws://{hd.http}/ws?token={token(hd, 'viewer')}", max_size=None) as ws:
            await ws.send("[" + "1," * 100_000 + "1]")
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 20)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    asyncio.run(main())
    stub = pb_grpc.OrderServiceStub(hd.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.PlaceOrder(pb.PlaceOrderRequest(account="x" * (5 * 1024 * 1024), symbol="BTC-USD"), metadata=hd.metadata())
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    tried("oversize", 2)
    alive(hd)


def ws_connections(d: DaemonProcess) -> float:
    text = urllib.request.urlopen(f"http://{d.http}/metrics", timeout=5).read().decode()
    return sum(float(v) for v in re.findall(r'^tradsys_ws_connections\{[^}]*\} (\S+)$', text, re.M))


def test_thousands_of_connections_opening_and_closing(hd: DaemonProcess) -> None:
    base = ws_connections(hd)
    url = f"ws://{hd.http}/ws?token={token(hd, 'viewer')}"

    async def one(i: int) -> None:
        try:
            async with connect(f"{url}" if i % 3 else f"ws://{hd.http}/ws/v2", open_timeout=30) as ws:
                if i % 2:
                    await ws.send(json.dumps({"type": "subscribe", "id": 1, "channels": ["book:ETH-USD"]}))
        except (ConnectionClosed, InvalidStatus, OSError, TimeoutError):
            pass  # refused or cut off is fine; the daemon's survival is the test

    async def main() -> None:
        for start in range(0, 2000, 200):
            await asyncio.gather(*(one(i) for i in range(start, start + 200)))

    asyncio.run(main())
    tried("connections", 2000)
    eventually(lambda: ws_connections(hd) == base, timeout=20)
    alive(hd)


def test_peerjs_message_flood_is_bounded(hd: DaemonProcess) -> None:
    viewer = token(hd, "viewer")

    def stats() -> dict[str, Any]:
        request = urllib.request.Request(f"http://{hd.http}/peerjs/stats", headers={"Authorization": f"Bearer {viewer}"})
        return json.loads(urllib.request.urlopen(request, timeout=5).read())

    async def main() -> None:
        base = f"ws://{hd.http}/peerjs?key={viewer}"
        async with connect(f"{base}&id=flooder&token=t1") as flooder, connect(f"{base}&id=alice&token=t2") as alice, \
                connect(f"{base}&id=bob&token=t3") as bob:
            for ws in (flooder, alice, bob):
                assert json.loads(await ws.recv())["type"] == "OPEN"
            junk = ["{not json", "[]", json.dumps({"type": "OFFER"}), json.dumps({"type": "OFFER", "dst": 5})]
            for i in range(5000):
                await flooder.send(json.dumps({"type": "OFFER", "dst": "absent", "payload": {"sdp": "x" * 100}})
                                   if i % 5 else junk[i // 5 % len(junk)])
            await alice.send(json.dumps({"type": "OFFER", "dst": "bob", "payload": {"sdp": "hi"}}))
            relayed = json.loads(await asyncio.wait_for(bob.recv(), 20))
            assert relayed["src"] == "alice" and relayed["payload"] == {"sdp": "hi"}

    before = stats()["dropped"].get("queue_limit", 0)
    asyncio.run(main())
    tried("peerjs_messages", 5001)
    assert stats()["dropped"]["queue_limit"] - before >= 3000, "messages for an absent peer beyond queue_limit are dropped"
    alive(hd)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(d: DaemonProcess) -> dict[str, tuple[str, str]]:
    """name -> (token, the AuthError code it must be refused with)."""
    now = datetime.now(UTC)
    claims = {"sub": "mallory", "role": "admin", "accounts": ["*"], "iat": int(now.timestamp()), "jti": "j"}
    good = token(d, "trader", "alice")
    head, body, sig = good.split(".")
    forged = _b64({**json.loads(base64.urlsafe_b64decode(body + "==")), "role": "admin", "accounts": ["*"]})
    return {
        "garbage": ("not-a-jwt", "malformed"),
        "expired": (jwt.encode({**claims, "exp": now - timedelta(minutes=1)}, secret(d), algorithm="HS256"), "expired"),
        "tampered": (f"{head}.{forged}.{sig}", "bad_signature"),
        "other_secret": (issue_token(b"\x02" * 32, "admin"), "bad_signature"),
        "alg_none": (f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.", "wrong_algorithm"),
        "hs512": (jwt.encode(claims, secret(d), algorithm="HS512"), "wrong_algorithm"),
        # RS/HS confusion: an RS256 header over an HMAC made with what a verifier might take as the public key
        "rs256_confused": (f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.{sig}", "wrong_algorithm"),
        "missing_claims": (jwt.encode({"role": "admin"}, secret(d), algorithm="HS256"), "bad_claims"),
    }


def test_bad_tokens_are_refused_by_name_on_grpc_ws_and_peerjs(hd: DaemonProcess) -> None:
    stub = pb_grpc.OrderServiceStub(hd.channel())
    for name, (tok, code) in bad_tokens(hd).items():
        with pytest.raises(grpc.RpcError) as err:
            stub.ListOrders(pb.ListOrdersRequest(), metadata=(("authorization", f"Bearer {tok}"),))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
        assert err.value.details().startswith(code), (name, err.value.details())

        async def ws() -> None:
            async with connect(f"ws://{hd.http}/ws") as conn:
                await conn.send(json.dumps({"type": "auth", "id": 1, "token": tok}))
                msg = json.loads(await asyncio.wait_for(conn.recv(), 20))
                assert msg["error"]["code"] == "unauthenticated" and code in msg["error"]["message"], (name, msg)

        async def peerjs() -> None:
            async with connect(f"ws://{hd.http}/peerjs?key={tok}&id=p&token=t") as conn:
                msg = json.loads(await asyncio.wait_for(conn.recv(), 20))
                assert msg["type"] == "ERROR" and f": {code}: " in msg["payload"]["msg"], (name, msg)

        asyncio.run(ws())
        asyncio.run(peerjs())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://{hd.http}/{tok}/id", timeout=5)
        assert refused.value.code == 401 and f": {code}: " in refused.value.read().decode(), name
        tried("bad_tokens", 4)
    alive(hd)


def test_a_trader_cannot_act_on_another_account(hd: DaemonProcess) -> None:
    stub = pb_grpc.OrderServiceStub(hd.channel())
    # a resting order of bob's, placed by the admin far from the market (a stop: no price band)
    admin_order = stub.PlaceOrder(pb.PlaceOrderRequest(
        account="bob", symbol="ETH-USD", side=common.SIDE_SELL, type=common.ORDER_TYPE_STOP,
        stop_price="1.00", qty="0.01"), metadata=hd.metadata()).order
    alice = (("authorization", f"Bearer {token(hd, 'trader', 'alice')}"),)
    attempts = [
        lambda: stub.PlaceOrder(pb.PlaceOrderRequest(account="bob", symbol="ETH-USD", side=common.SIDE_BUY,
                                                     price="1.00", qty="0.01"), metadata=alice),
        lambda: stub.CancelOrder(pb.CancelOrderRequest(order_id=admin_order.order_id), metadata=alice),
        lambda: stub.AmendOrder(pb.AmendOrderRequest(order_id=admin_order.order_id, new_open_qty="0.02"), metadata=alice),
        lambda: stub.CancelAll(pb.CancelAllRequest(account="bob"), metadata=alice),
        lambda: stub.CancelAll(pb.CancelAllRequest(), metadata=alice) and None,
    ]
    for attempt in attempts[:4]:
        with pytest.raises(grpc.RpcError) as err:
            attempt()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
        assert "bob" in err.value.details()
    # cancel-all without an account cancels alice's own orders only
    attempts[4]()
    acks = list(stub.OrderEntry(iter([pb.OrderBatch(seq=1, requests=[
        pb.OrderRequest(place=pb.PlaceOrderRequest(account="bob", symbol="ETH-USD", side=common.SIDE_BUY,
                                                   price="1.00", qty="0.01")),
        pb.OrderRequest(cancel=pb.CancelOrderRequest(order_id=admin_order.order_id)),
    ])]), metadata=alice))
    assert [(r.error.code, r.error.message) for r in acks[0].results] == [
        (common.ERROR_CODE_PERMISSION_DENIED, "role trader may trade accounts [alice], not bob")] * 2

    async def ws() -> None:
        async with connect(f"ws://{hd.http}/ws?token={token(hd, 'trader', 'alice')}") as conn:
            for i, req in enumerate([{"type": "cancel", "order_id": admin_order.order_id},
                                     {"type": "amend", "order_id": admin_order.order_id, "new_open_qty": "0.02"},
                                     {"type": "cancel_all", "account": "bob"}]):
                await conn.send(json.dumps({**req, "id": i}))
                msg = json.loads(await asyncio.wait_for(conn.recv(), 20))
                assert msg["error"]["code"] == "permission_denied", msg

    asyncio.run(ws())
    after = stub.GetOrder(pb.GetOrderRequest(order_id=admin_order.order_id), metadata=hd.metadata()).order
    assert after.status == admin_order.status and after.qty == admin_order.qty, "bob's order untouched"
    tried("cross_account", 10)
    alive(hd)
