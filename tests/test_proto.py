"""The generated tradsys.proto modules: present, complete and wire-correct."""

import importlib
from pathlib import Path

import pytest
from google.protobuf import descriptor

import tradsys.proto
from tradsys.proto import (
    common_pb2,
    marketdata_pb2,
    marketdata_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    risk_pb2,
    risk_pb2_grpc,
    strategy_pb2,
    strategy_pb2_grpc,
    ws_pb2,
)

PROTO_DIR = Path(__file__).resolve().parent.parent / "proto"


@pytest.mark.parametrize("name", tradsys.proto.PROTO_MODULES)
def test_generated_modules_import(name):
    pb2 = importlib.import_module(f"tradsys.proto.{name}_pb2")
    importlib.import_module(f"tradsys.proto.{name}_pb2_grpc")
    assert pb2.DESCRIPTOR.package == "tradsys.v1"
    # The virtual path mapping is what makes inter-file imports resolve inside tradsys.proto.
    assert pb2.DESCRIPTOR.name == f"tradsys/proto/{name}.proto"


@pytest.mark.skipif(not PROTO_DIR.is_dir(), reason="needs the source tree")
def test_every_proto_file_is_listed():
    assert sorted(p.stem for p in PROTO_DIR.glob("*.proto")) == sorted(tradsys.proto.PROTO_MODULES)


EXPECTED_RPCS = {
    (orders_pb2, "OrderService"): {
        "PlaceOrder": (False, False),
        "CancelOrder": (False, False),
        "CancelAll": (False, False),
        "AmendOrder": (False, False),
        "GetOrder": (False, False),
        "ListOrders": (False, False),
        "ListFills": (False, False),
        "GetPositions": (False, False),
        "StreamOrderEvents": (False, True),
        "OrderEntry": (True, True),
    },
    (marketdata_pb2, "MarketDataService"): {
        "ListInstruments": (False, False),
        "GetBook": (False, False),
        "GetTrades": (False, False),
        "GetBars": (False, False),
        "StreamBook": (False, True),
        "StreamTrades": (False, True),
        "StreamBars": (False, True),
    },
    (risk_pb2, "RiskService"): {
        "GetLimits": (False, False),
        "SetLimits": (False, False),
        "ValidateOrder": (False, False),
        "Halt": (False, False),
        "Resume": (False, False),
        "SetKillSwitch": (False, False),
        "GetRiskState": (False, False),
    },
    (strategy_pb2, "StrategyService"): {
        "ListStrategies": (False, False),
        "StartStrategy": (False, False),
        "StopStrategy": (False, False),
        "GetStrategyStatus": (False, False),
        "ListRunning": (False, False),
    },
}


@pytest.mark.parametrize(
    "module,service", list(EXPECTED_RPCS), ids=[s for _, s in EXPECTED_RPCS]
)
def test_service_methods(module, service):
    svc = module.DESCRIPTOR.services_by_name[service]
    assert svc.full_name == f"tradsys.v1.{service}"
    expected = EXPECTED_RPCS[(module, service)]
    assert set(svc.methods_by_name) == set(expected)
    for name, (client_streaming, server_streaming) in expected.items():
        method = svc.methods_by_name[name]
        assert method.client_streaming is client_streaming, name
        assert method.server_streaming is server_streaming, name


def test_grpc_stubs_and_servicers_exist():
    for grpc_module, service in [
        (orders_pb2_grpc, "OrderService"),
        (marketdata_pb2_grpc, "MarketDataService"),
        (risk_pb2_grpc, "RiskService"),
        (strategy_pb2_grpc, "StrategyService"),
    ]:
        assert hasattr(grpc_module, f"{service}Stub")
        assert hasattr(grpc_module, f"{service}Servicer")
        assert hasattr(grpc_module, f"add_{service}Servicer_to_server")


def test_unary_rpcs_have_their_own_request_and_response_messages():
    for module, service in EXPECTED_RPCS:
        for method in module.DESCRIPTOR.services_by_name[service].methods:
            if not method.client_streaming:
                assert method.input_type.name == f"{method.name}Request", method.full_name
            if not method.server_streaming:
                assert method.output_type.name == f"{method.name}Response", method.full_name


def test_enums_have_prefixed_zero_unspecified():
    expected = {
        "Side": ["SIDE_UNSPECIFIED", "SIDE_BUY", "SIDE_SELL"],
        "OrderType": [
            "ORDER_TYPE_UNSPECIFIED",
            "ORDER_TYPE_LIMIT",
            "ORDER_TYPE_MARKET",
            "ORDER_TYPE_STOP",
            "ORDER_TYPE_STOP_LIMIT",
        ],
        "TimeInForce": [
            "TIME_IN_FORCE_UNSPECIFIED",
            "TIME_IN_FORCE_GTC",
            "TIME_IN_FORCE_IOC",
            "TIME_IN_FORCE_FOK",
            "TIME_IN_FORCE_DAY",
            "TIME_IN_FORCE_GTD",
        ],
        "OrderStatus": [
            "ORDER_STATUS_UNSPECIFIED",
            "ORDER_STATUS_NEW",
            "ORDER_STATUS_PARTIALLY_FILLED",
            "ORDER_STATUS_FILLED",
            "ORDER_STATUS_CANCELLED",
            "ORDER_STATUS_REJECTED",
            "ORDER_STATUS_EXPIRED",
        ],
    }
    for enum_name, values in expected.items():
        enum = common_pb2.DESCRIPTOR.enum_types_by_name[enum_name]
        assert [v.name for v in enum.values] == values
        assert enum.values[0].number == 0


DECIMAL_FIELDS = {
    orders_pb2.Order: ["price", "stop_price", "qty", "filled_qty", "open_qty", "avg_fill_price"],
    orders_pb2.Fill: ["price", "qty", "fee"],
    orders_pb2.Position: ["qty", "avg_price", "realized_pnl", "unrealized_pnl", "fees", "mark_price"],
    orders_pb2.PlaceOrderRequest: ["price", "stop_price", "qty"],
    orders_pb2.AmendOrderRequest: ["new_price", "new_open_qty"],
    marketdata_pb2.Instrument: ["tick_size", "lot_size", "min_qty", "max_qty"],
    marketdata_pb2.BookLevel: ["price", "qty"],
    marketdata_pb2.Trade: ["price", "qty"],
    marketdata_pb2.Bar: ["open", "high", "low", "close", "volume"],
}


@pytest.mark.parametrize("message", list(DECIMAL_FIELDS), ids=lambda m: m.DESCRIPTOR.name)
def test_prices_and_quantities_are_decimal_strings(message):
    fields = message.DESCRIPTOR.fields_by_name
    for name in DECIMAL_FIELDS[message]:
        assert fields[name].type == descriptor.FieldDescriptor.TYPE_STRING, name
    # Exactness: a value a float cannot represent survives the wire unchanged.
    msg = message(**{name: "0.10000000000000000001" for name in DECIMAL_FIELDS[message]})
    back = message.FromString(msg.SerializeToString())
    assert all(getattr(back, n) == "0.10000000000000000001" for n in DECIMAL_FIELDS[message])


def test_no_float_fields_anywhere():
    float_types = {descriptor.FieldDescriptor.TYPE_FLOAT, descriptor.FieldDescriptor.TYPE_DOUBLE}

    def walk(msg_desc):
        for field in msg_desc.fields:
            assert field.type not in float_types, f"{msg_desc.full_name}.{field.name}"
        for nested in msg_desc.nested_types:
            walk(nested)

    for module in (common_pb2, orders_pb2, marketdata_pb2, risk_pb2, strategy_pb2, ws_pb2):
        for msg_desc in module.DESCRIPTOR.message_types_by_name.values():
            walk(msg_desc)


def test_timestamps_are_int64_ns():
    for module in (orders_pb2, marketdata_pb2, risk_pb2, strategy_pb2, ws_pb2):
        for msg_desc in module.DESCRIPTOR.message_types_by_name.values():
            for field in msg_desc.fields:
                if field.name.endswith("_ns"):
                    assert field.type == descriptor.FieldDescriptor.TYPE_INT64, field.full_name


def _envelope(id_, type_, **body):
    env = ws_pb2.Envelope(id=id_, type=type_, **body)
    assert env.WhichOneof("body") == type_  # the convention the type string mirrors
    return env


def test_envelope_batch_round_trip():
    order = orders_pb2.Order(
        order_id="o-1",
        client_id="c-1",
        account="acct",
        symbol="BTC-USD",
        side=common_pb2.SIDE_BUY,
        type=common_pb2.ORDER_TYPE_LIMIT,
        tif=common_pb2.TIME_IN_FORCE_GTC,
        price="100.01",
        qty="0.5",
        filled_qty="0.2",
        open_qty="0.3",
        status=common_pb2.ORDER_STATUS_PARTIALLY_FILLED,
        created_ns=1_700_000_000_123_456_789,
    )
    fill = orders_pb2.Fill(fill_id="f-1", order_id="o-1", price="100.01", qty="0.2",
                           liquidity=common_pb2.LIQUIDITY_MAKER)
    batch = ws_pb2.Batch(
        items=[
            _envelope(0, "book_snapshot", book_snapshot=marketdata_pb2.BookSnapshot(
                symbol="BTC-USD",
                bids=[marketdata_pb2.BookLevel(price="100.00", qty="1.5", order_count=3)],
                asks=[marketdata_pb2.BookLevel(price="100.01", qty="0.25", order_count=1)],
                seq=41,
            )),
            _envelope(0, "book_update", book_update=marketdata_pb2.BookUpdate(
                symbol="BTC-USD", asks=[marketdata_pb2.BookLevel(price="100.01", qty="0")], seq=42,
            )),
            _envelope(0, "order_event", order_event=orders_pb2.OrderEvent(
                kind=orders_pb2.OrderEvent.KIND_FILLED, order=order, fill=fill, seq=7,
            )),
            _envelope(0, "alert", alert=ws_pb2.Alert(
                id="a-1", rule="HighLatency", severity=ws_pb2.Alert.SEVERITY_WARNING,
                state=ws_pb2.Alert.STATE_FIRING, labels={"symbol": "BTC-USD"},
            )),
            _envelope(5, "result", result=ws_pb2.Result(
                place=orders_pb2.PlaceOrderResponse(order=order, fills=[fill]),
            )),
            _envelope(6, "error", error=common_pb2.Error(
                code=common_pb2.ERROR_CODE_NOT_FOUND, message="unknown channel",
            )),
            _envelope(0, "pong", pong=ws_pb2.Pong(ts_ns=1, responder_ts_ns=2)),
        ]
    )
    frame = _envelope(0, "batch", batch=batch)

    wire = frame.SerializeToString()
    assert isinstance(wire, bytes) and wire
    back = ws_pb2.Envelope.FromString(wire)

    assert back == frame
    assert back.WhichOneof("body") == "batch"
    items = back.batch.items
    assert [e.type for e in items] == [e.WhichOneof("body") for e in items]
    assert items[0].book_snapshot.bids[0].price == "100.00"
    assert items[1].book_update.asks[0].qty == "0"
    assert items[2].order_event.HasField("fill")
    assert items[2].order_event.order.open_qty == "0.3"
    assert items[3].alert.labels["symbol"] == "BTC-USD"
    assert items[4].id == 5 and items[4].result.WhichOneof("value") == "place"
    assert items[4].result.place.fills[0].liquidity == common_pb2.LIQUIDITY_MAKER
    assert items[5].error.code == common_pb2.ERROR_CODE_NOT_FOUND
    # A standalone Batch is wire-compatible with the Envelope's batch body.
    assert ws_pb2.Batch.FromString(batch.SerializeToString()) == back.batch


def test_envelope_client_requests_reuse_order_messages():
    env = ws_pb2.Envelope(
        id=9,
        type="place",
        place=orders_pb2.PlaceOrderRequest(
            client_id="c-9", account="acct", symbol="ETH-USD", side=common_pb2.SIDE_SELL,
            type=common_pb2.ORDER_TYPE_STOP_LIMIT, tif=common_pb2.TIME_IN_FORCE_GTD,
            price="1999.5", stop_price="2000", qty="3", expire_ns=1,
        ),
    )
    back = ws_pb2.Envelope.FromString(env.SerializeToString())
    assert back.place.stop_price == "2000"
    assert ws_pb2.Envelope.DESCRIPTOR.fields_by_name["place"].message_type is (
        orders_pb2.PlaceOrderRequest.DESCRIPTOR
    )
    sub = ws_pb2.Envelope(id=1, type="subscribe", subscribe=ws_pb2.SubscribeRequest(
        channels=["book:BTC-USD", "trades:BTC-USD", "bars:BTC-USD:1m", "orders", "positions", "alerts"]))
    assert ws_pb2.Envelope.FromString(sub.SerializeToString()).subscribe.channels[2] == "bars:BTC-USD:1m"


def test_order_batch_ack_round_trip():
    batch = orders_pb2.OrderBatch(
        seq=3,
        requests=[
            orders_pb2.OrderRequest(place=orders_pb2.PlaceOrderRequest(symbol="BTC-USD", qty="1")),
            orders_pb2.OrderRequest(cancel=orders_pb2.CancelOrderRequest(order_id="o-1")),
            orders_pb2.OrderRequest(amend=orders_pb2.AmendOrderRequest(order_id="o-2", new_open_qty="0.5")),
        ],
    )
    back = orders_pb2.OrderBatch.FromString(batch.SerializeToString())
    assert [r.WhichOneof("request") for r in back.requests] == ["place", "cancel", "amend"]
    ack = orders_pb2.OrderBatchAck(
        seq=3,
        results=[
            orders_pb2.OrderResult(order_id="o-3", status=common_pb2.ORDER_STATUS_NEW),
            orders_pb2.OrderResult(order_id="o-1", error=common_pb2.Error(
                code=common_pb2.ERROR_CODE_ORDER_CLOSED, message="already filled")),
            orders_pb2.OrderResult(order_id="o-2", status=common_pb2.ORDER_STATUS_NEW),
        ],
    )
    back_ack = orders_pb2.OrderBatchAck.FromString(ack.SerializeToString())
    assert back_ack.seq == back.seq
    assert [r.HasField("error") for r in back_ack.results] == [False, True, False]
