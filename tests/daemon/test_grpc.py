"""A real daemon over loopback: order round trips, streams, risk, auth refusals, health and metrics."""

import json
import threading
import urllib.request
from decimal import Decimal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import DaemonProcess, eventually
from tradsys.daemon.auth import issue_token
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc
from tradsys.proto import risk_pb2 as rk
from tradsys.proto import risk_pb2_grpc as rk_grpc

BUY, SELL = common.SIDE_BUY, common.SIDE_SELL


@pytest.fixture(scope="module")
def stubs(daemon: DaemonProcess):  # type: ignore[no-untyped-def]
    channel = daemon.channel()
    yield pb_grpc.OrderServiceStub(channel), md_grpc.MarketDataServiceStub(channel), rk_grpc.RiskServiceStub(channel)
    channel.close()


def token(daemon: DaemonProcess, role: str, *accounts: str) -> str:
    secret = bytes.fromhex((daemon.home / "secret.key").read_text().strip())
    return issue_token(secret, role, accounts=accounts)


@pytest.fixture(scope="module")
def best(daemon: DaemonProcess, stubs):  # type: ignore[no-untyped-def]
    """Best bid and ask of a symbol once the simulated market quotes both sides."""
    _, market, _ = stubs

    def touch(symbol: str = "BTC-USD") -> tuple[Decimal, Decimal]:
        def quoted():  # type: ignore[no-untyped-def]
            book = market.GetBook(md.GetBookRequest(symbol=symbol, depth=5), metadata=daemon.metadata()).book
            return book if book.bids and book.asks else None

        book = eventually(quoted, timeout=20)
        return Decimal(book.bids[0].price), Decimal(book.asks[0].price)

    return touch


def test_health_service_and_http_health(daemon: DaemonProcess) -> None:
    stub = health_pb2_grpc.HealthStub(daemon.channel())
    reply = stub.Check(health_pb2.HealthCheckRequest(service="tradsys.v1.OrderService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with urllib.request.urlopen(f"http://{daemon.http}/health") as resp:
        doc = json.loads(resp.read())
    assert resp.status == 200
    assert doc["status"] == "ok"
    assert doc["components"]["engine"] == "running"
    assert doc["components"]["market"] == "running"


def test_place_rest_and_cancel_round_trip(daemon: DaemonProcess, stubs, best) -> None:  # type: ignore[no-untyped-def]
    orders, _, _ = stubs
    bid, _ = best()
    far = bid - Decimal("100.00")
    placed = orders.PlaceOrder(
        pb.PlaceOrderRequest(account="alice", symbol="BTC-USD", side=BUY, qty="0.010", price=str(far), client_id="c-1"),
        metadata=daemon.metadata(),
    ).order
    assert placed.status == common.ORDER_STATUS_NEW
    assert placed.order_id.isdigit()
    assert Decimal(placed.price) == far and Decimal(placed.open_qty) == Decimal("0.01")
    got = orders.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), metadata=daemon.metadata()).order
    assert got.client_id == "c-1" and got.status == common.ORDER_STATUS_NEW
    cancelled = orders.CancelOrder(pb.CancelOrderRequest(order_id=placed.order_id), metadata=daemon.metadata()).order
    assert cancelled.status == common.ORDER_STATUS_CANCELLED
    listed = orders.ListOrders(pb.ListOrdersRequest(account="alice", statuses=[common.ORDER_STATUS_CANCELLED]),
                               metadata=daemon.metadata()).orders
    assert placed.order_id in [o.order_id for o in listed]


def test_marketable_order_fills_and_moves_the_position(daemon: DaemonProcess, stubs, best) -> None:  # type: ignore[no-untyped-def]
    orders, _, _ = stubs
    _, ask = best()
    reply = orders.PlaceOrder(
        pb.PlaceOrderRequest(account="bob", symbol="BTC-USD", side=BUY, qty="0.002", price=str(ask + Decimal("50")),
                             tif=common.TIME_IN_FORCE_IOC),
        metadata=daemon.metadata(),
    )
    assert reply.order.status == common.ORDER_STATUS_FILLED
    assert sum(Decimal(f.qty) for f in reply.fills) == Decimal("0.002")
    assert all(f.liquidity == common.LIQUIDITY_TAKER for f in reply.fills)
    positions = orders.GetPositions(pb.GetPositionsRequest(account="bob"), metadata=daemon.metadata()).positions
    assert [(p.symbol, Decimal(p.qty)) for p in positions] == [("BTC-USD", Decimal("0.002"))]
    fills = orders.ListFills(pb.ListFillsRequest(account="bob"), metadata=daemon.metadata()).fills
    assert {f.order_id for f in fills} == {reply.order.order_id}


@pytest.mark.parametrize(
    ("request_kwargs", "code", "reason"),
    [
        ({"price": "100.001"}, grpc.StatusCode.INVALID_ARGUMENT, "price_precision"),
        ({"price": "-5"}, grpc.StatusCode.INVALID_ARGUMENT, "invalid_price"),
        ({"price": "NaN"}, grpc.StatusCode.INVALID_ARGUMENT, "invalid_price"),
        ({"price": "1000000", "qty": "50"}, grpc.StatusCode.FAILED_PRECONDITION, "price_band"),
        ({"symbol": "DOGE-USD"}, grpc.StatusCode.NOT_FOUND, "unknown_symbol"),
        ({"qty": "abc"}, grpc.StatusCode.INVALID_ARGUMENT, "invalid_qty"),
    ],
)
def test_bad_orders_get_the_right_status(daemon: DaemonProcess, stubs, request_kwargs, code, reason) -> None:  # type: ignore[no-untyped-def]
    orders, _, _ = stubs
    fields = {"account": "carol", "symbol": "BTC-USD", "side": BUY, "qty": "0.001", "price": "50000", **request_kwargs}
    with pytest.raises(grpc.RpcError) as err:
        orders.PlaceOrder(pb.PlaceOrderRequest(**fields), metadata=daemon.metadata())
    assert err.value.code() == code
    assert reason in err.value.details()
    assert ("tradsys-reason", reason) in err.value.trailing_metadata()


def test_max_notional_refusal_names_the_limit(daemon: DaemonProcess, stubs, best) -> None:  # type: ignore[no-untyped-def]
    orders, _, _ = stubs
    bid, _ = best()
    with pytest.raises(grpc.RpcError) as err:
        orders.PlaceOrder(pb.PlaceOrderRequest(account="carol", symbol="BTC-USD", side=BUY, qty="20", price=str(bid)),
                          metadata=daemon.metadata())
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "max_notional" in err.value.details() and "1,000,000" in err.value.details()


def test_auth_refusals(daemon: DaemonProcess, stubs, best) -> None:  # type: ignore[no-untyped-def]
    orders, market, _ = stubs
    price = str(best()[0] - 200)
    request = pb.PlaceOrderRequest(account="dave", symbol="BTC-USD", side=BUY, qty="0.001", price=price)
    for metadata, code in [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer not-a-jwt"),), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", f"Bearer {token(daemon, 'viewer')}"),), grpc.StatusCode.PERMISSION_DENIED),
        ((("authorization", f"Bearer {token(daemon, 'trader', 'erin')}"),), grpc.StatusCode.PERMISSION_DENIED),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            orders.PlaceOrder(request, metadata=metadata)
        assert err.value.code() == code, metadata
    viewer = (("authorization", f"Bearer {token(daemon, 'viewer')}"),)
    assert market.ListInstruments(md.ListInstrumentsRequest(), metadata=viewer).instruments
    trader = (("authorization", f"Bearer {token(daemon, 'trader', 'dave')}"),)
    placed = orders.PlaceOrder(pb.PlaceOrderRequest(symbol="BTC-USD", side=BUY, qty="0.001", price=price),
                               metadata=trader).order
    assert placed.account == "dave"
    with pytest.raises(grpc.RpcError) as err:
        rk_grpc.RiskServiceStub(daemon.channel()).SetKillSwitch(rk.SetKillSwitchRequest(on=True), metadata=trader)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_order_event_stream_sees_own_orders(daemon: DaemonProcess, stubs, best) -> None:  # type: ignore[no-untyped-def]
    orders, _, _ = stubs
    stream = orders.StreamOrderEvents(pb.StreamOrderEventsRequest(account="frank"), metadata=daemon.metadata())
    seen: list[pb.OrderEvent] = []

    def read() -> None:
        for event in stream:
            seen.append(event)
            if event.kind == pb.OrderEvent.KIND_CANCELLED:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    bid, _ = best()

    for _ in range(50):  # the stream subscribes when the server sees the call: retry until it has
        placed = orders.PlaceOrder(pb.PlaceOrderRequest(account="frank", symbol="BTC-USD", side=BUY, qty="0.001",
                                                        price=str(bid - 200)), metadata=daemon.metadata()).order
        orders.CancelOrder(pb.CancelOrderRequest(order_id=placed.order_id), metadata=daemon.metadata())
        reader.join(0.2)
        if not reader.is_alive():
            break
    stream.cancel()
    kinds = [e.kind for e in seen]
    assert kinds[-2:] == [pb.OrderEvent.KIND_ACCEPTED, pb.OrderEvent.KIND_CANCELLED]
    assert all(e.order.account == "frank" for e in seen)
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)


def test_book_stream_snapshot_then_gapless_updates(daemon: DaemonProcess, stubs) -> None:  # type: ignore[no-untyped-def]
    _, market, _ = stubs
    stream = market.StreamBook(md.StreamBookRequest(symbol="ETH-USD", depth=50), metadata=daemon.metadata())
    first = next(stream)
    assert first.WhichOneof("event") == "snapshot"
    seq = first.snapshot.seq
    for _ in range(5):
        event = next(stream)
        assert event.WhichOneof("event") == "update"
        assert event.update.seq == seq + 1
        seq = event.update.seq
    stream.cancel()


def test_trades_and_bars_from_the_simulated_market(daemon: DaemonProcess, stubs) -> None:  # type: ignore[no-untyped-def]
    _, market, _ = stubs
    trades = eventually(lambda: market.GetTrades(md.GetTradesRequest(symbol="SOL-USD", limit=10),
                                                 metadata=daemon.metadata()).trades, timeout=20)
    assert all(Decimal(t.price) > 0 and Decimal(t.qty) > 0 for t in trades)
    bars = market.GetBars(md.GetBarsRequest(symbol="SOL-USD", interval="1s"), metadata=daemon.metadata()).bars
    assert bars and all(Decimal(b.low) <= Decimal(b.close) <= Decimal(b.high) for b in bars)
    with pytest.raises(grpc.RpcError) as err:
        market.GetBars(md.GetBarsRequest(symbol="SOL-USD", interval="7x"), metadata=daemon.metadata())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_risk_limits_validate_halt_and_kill_switch(daemon: DaemonProcess, stubs, best) -> None:  # type: ignore[no-untyped-def]
    orders, _, risk = stubs
    meta = daemon.metadata()
    risk.SetLimits(rk.SetLimitsRequest(limits=[rk.RiskLimit(key="max_order_notional", value="100", account="gina")]),
                   metadata=meta)
    limits = risk.GetLimits(rk.GetLimitsRequest(account="gina"), metadata=meta).limits
    assert ("max_order_notional", "100", "gina") in [(l.key, l.value, l.account) for l in limits]
    bid, _ = best()
    check = risk.ValidateOrder(rk.ValidateOrderRequest(order=pb.PlaceOrderRequest(
        account="gina", symbol="BTC-USD", side=BUY, qty="0.01", price=str(bid))), metadata=meta)
    assert not check.ok and check.reasons[0].startswith("max_notional")
    with pytest.raises(grpc.RpcError) as err:
        risk.SetLimits(rk.SetLimitsRequest(limits=[rk.RiskLimit(key="max_ordr_notional", value="1")]), metadata=meta)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    state = risk.Halt(rk.HaltRequest(symbol="SOL-USD", reason="test"), metadata=meta).state
    assert state.halted and state.halt_reason == "test"
    with pytest.raises(grpc.RpcError) as err:
        orders.PlaceOrder(pb.PlaceOrderRequest(account="gina", symbol="SOL-USD", side=BUY, qty="1", price="100"),
                          metadata=meta)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "halted" in err.value.details()
    assert not risk.Resume(rk.ResumeRequest(symbol="SOL-USD"), metadata=meta).state.halted


def test_metrics_exposition(daemon: DaemonProcess, stubs, best) -> None:  # type: ignore[no-untyped-def]
    best()
    with urllib.request.urlopen(f"http://{daemon.http}/metrics") as resp:
        text = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("text/plain")
    assert 'tradsys_orders_total{outcome="accepted"' in text
    assert "tradsys_journal_commit_seconds_bucket" in text
    commits = [l for l in text.splitlines() if l.startswith("tradsys_journal_commit_seconds_count")]
    assert commits and float(commits[0].split()[-1]) > 0, "every commit is timed"
    assert 'tradsys_book_depth{side="bid",symbol="BTC-USD"}' in text
    assert "tradsys_engine_batch_seconds_count" in text
    assert 'tradsys_grpc_requests_total{code="OK",method="GetBook"}' in text
    assert "process_resident_memory_bytes" in text


def _metric(daemon: DaemonProcess, name: str) -> float:
    """The value of one sample (`name` with its labels) in the daemon's exposition, 0 if absent."""
    with urllib.request.urlopen(f"http://{daemon.http}/metrics") as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def test_order_entry_calls_are_counted_by_their_final_status_and_timed(daemon: DaemonProcess, stubs, best) -> None:  # type: ignore[no-untyped-def]
    orders, _, _ = stubs
    price = str(best()[0] - 300)
    samples = {
        "ok": 'tradsys_grpc_requests_total{code="OK",method="PlaceOrder"}',
        "invalid": 'tradsys_grpc_requests_total{code="INVALID_ARGUMENT",method="PlaceOrder"}',
        "unauthenticated": 'tradsys_grpc_requests_total{code="UNAUTHENTICATED",method="PlaceOrder"}',
        "refused": 'tradsys_grpc_requests_total{code="FAILED_PRECONDITION",method="PlaceOrder"}',
        "timed": 'tradsys_order_ack_seconds_count{method="PlaceOrder"}',
    }
    before = {key: _metric(daemon, name) for key, name in samples.items()}
    request = pb.PlaceOrderRequest(account="grace", symbol="BTC-USD", side=BUY, qty="0.001", price=price)
    for _ in range(2):
        orders.PlaceOrder(request, metadata=daemon.metadata())
    for bad, metadata in [(pb.PlaceOrderRequest(account="grace", symbol="BTC-USD", qty="0.001", price=price),
                           daemon.metadata()),
                          (request, ()),
                          (pb.PlaceOrderRequest(account="grace", symbol="BTC-USD", side=BUY, qty="20", price=price),
                           daemon.metadata())]:
        with pytest.raises(grpc.RpcError):
            orders.PlaceOrder(bad, metadata=metadata)
    garbage = daemon.channel().unary_unary("/tradsys.v1.OrderService/PlaceOrder")
    with pytest.raises(grpc.RpcError) as err:
        garbage(b"\xff\xff\xff", metadata=daemon.metadata())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def counted() -> bool:
        after = {key: _metric(daemon, name) for key, name in samples.items()}
        return {key: after[key] - before[key] for key in samples} == {
            "ok": 2, "invalid": 2, "unauthenticated": 1, "refused": 1, "timed": 6}

    eventually(counted)


def test_server_reflection_lists_the_services(daemon: DaemonProcess) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(daemon.channel())
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in next(replies).list_services_response.service}
    assert {"tradsys.v1.OrderService", "tradsys.v1.MarketDataService", "tradsys.v1.RiskService",
            "tradsys.v1.StrategyService", "grpc.health.v1.Health"} <= names
