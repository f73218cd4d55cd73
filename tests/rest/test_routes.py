"""Every REST route answers as its gRPC method does: the same data, the same refusals."""

from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from tests.rest.conftest import Rest
from tradsys.daemon.rest import ROUTES
from tradsys.daemon.rest.context import HTTP_STATUS
from tradsys.daemon.rest.routes import SERVICES, streamed
from tradsys.proto import alerts_pb2_grpc, marketdata_pb2_grpc, orders_pb2_grpc, risk_pb2_grpc, strategy_pb2_grpc

STUBS = {"orders": orders_pb2_grpc.OrderServiceStub, "marketdata": marketdata_pb2_grpc.MarketDataServiceStub,
         "risk": risk_pb2_grpc.RiskServiceStub, "strategy": strategy_pb2_grpc.StrategyServiceStub,
         "alerts": alerts_pb2_grpc.AlertServiceStub}
ORDER = {"account": "alice", "symbol": "BTC-USD", "side": "SIDE_BUY", "type": "ORDER_TYPE_LIMIT",
         "tif": "TIME_IN_FORCE_GTC", "price": "100", "qty": "0.5"}
SELL = {**ORDER, "account": "bob", "side": "SIDE_SELL", "qty": "0.2"}
VOLATILE = {"ts_ns", "created_ns", "updated_ns", "changed_ns", "started_ns"}


def grpc_call(rest: Rest, service: str, method: str, body: dict[str, Any], token: str | None = None) -> Any:
    """The gRPC method called with the request the REST route builds from `body`."""
    route = next(r for r in ROUTES if r.method == method)
    request = json_format.ParseDict(body, _request_class(route))
    with rest.daemon.channel() as channel:
        stub = STUBS[service](channel)
        return getattr(stub, method)(request, metadata=rest.daemon.metadata(token), timeout=10)


def _request_class(route: Any) -> Any:
    from google.protobuf.message_factory import GetMessageClass

    return GetMessageClass(route.descriptor.input_type)()


def as_json(message: Any) -> Any:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True,
                                     preserving_proto_field_name=True)


def test_every_unary_method_has_exactly_one_route() -> None:
    unary = {(k, m.name) for k, s in SERVICES.items() for m in s.methods
             if not (m.server_streaming or m.client_streaming)}
    routed = [(r.service, r.method) for r in ROUTES]
    assert sorted(routed) == sorted(unary)
    assert len({(r.verb, r.template) for r in ROUTES}) == len(ROUTES)
    assert {m.name for m in streamed()} == {"StreamOrderEvents", "OrderEntry", "StreamBook", "StreamTrades",
                                            "StreamBars", "StreamAlerts"}


@pytest.fixture(scope="module")
def traded(quiet: Any) -> dict[str, str]:
    """Two resting orders and a cross between them, placed over REST."""
    client = Rest(quiet)
    ids = {}
    for name, body in (("rest", {**ORDER, "price": "99"}), ("buy", ORDER), ("sell", SELL)):
        status, answer = client.call("POST", "/api/v1/orders", body)
        assert status == 200, answer
        ids[name] = answer["order"]["order_id"]
    client.connection.close()
    return ids


READS = [
    ("marketdata", "ListInstruments", "/api/v1/instruments", {}),
    ("marketdata", "GetBook", "/api/v1/books/BTC-USD?depth=10", {"symbol": "BTC-USD", "depth": 10}),
    ("marketdata", "GetBook", "/api/v1/books/BTC-USD", {"symbol": "BTC-USD"}),
    ("marketdata", "GetTrades", "/api/v1/trades/BTC-USD?limit=5", {"symbol": "BTC-USD", "limit": 5}),
    ("marketdata", "GetBars", "/api/v1/bars/BTC-USD?interval=1m", {"symbol": "BTC-USD", "interval": "1m"}),
    ("orders", "ListOrders", "/api/v1/orders?account=alice&statuses=ORDER_STATUS_NEW&statuses=ORDER_STATUS_PARTIALLY_FILLED",
     {"account": "alice", "statuses": ["ORDER_STATUS_NEW", "ORDER_STATUS_PARTIALLY_FILLED"]}),
    ("orders", "ListOrders", "/api/v1/orders?page_size=1", {"page_size": 1}),
    ("orders", "ListFills", "/api/v1/fills?symbol=BTC-USD", {"symbol": "BTC-USD"}),
    ("orders", "GetPositions", "/api/v1/positions?account=alice", {"account": "alice"}),
    ("risk", "GetRiskState", "/api/v1/risk", {}),
    ("risk", "GetLimits", "/api/v1/risk/limits", {}),
    ("strategy", "ListStrategies", "/api/v1/strategy-kinds", {}),
    ("strategy", "ListRunning", "/api/v1/strategies", {}),
    ("alerts", "ListAlerts", "/api/v1/alerts?limit=10", {"limit": 10}),
]


@pytest.mark.parametrize(("service", "method", "path", "body"), READS, ids=[r[2] for r in READS])
def test_reads_answer_what_grpc_answers(rest: Rest, traded: dict[str, str], service: str, method: str, path: str,
                                        body: dict[str, Any]) -> None:
    status, answer = rest.call("GET", path)
    assert status == 200, answer
    assert without_clock(answer) == without_clock(as_json(grpc_call(rest, service, method, body)))


def without_clock(value: Any) -> Any:
    """`value` less the time a snapshot was taken at (a book's ts_ns is the time of the call)."""
    if isinstance(value, dict):
        return {k: without_clock(v) for k, v in value.items() if k != "ts_ns" or "seq" not in value}
    return [without_clock(v) for v in value] if isinstance(value, list) else value


def test_an_order_read_answers_what_grpc_answers(rest: Rest, traded: dict[str, str]) -> None:
    for order_id in traded.values():
        status, answer = rest.call("GET", f"/api/v1/orders/{order_id}")
        assert status == 200
        assert answer == as_json(grpc_call(rest, "orders", "GetOrder", {"order_id": order_id}))
    assert answer["order"]["status"] == "ORDER_STATUS_FILLED"


def test_order_entry_over_rest_is_the_order_grpc_sees(rest: Rest, traded: dict[str, str]) -> None:
    status, placed = rest.call("POST", "/api/v1/orders", {**ORDER, "price": "98", "client_id": "rest-1"})
    assert status == 200
    order_id = placed["order"]["order_id"]
    assert placed["order"] == as_json(grpc_call(rest, "orders", "GetOrder", {"order_id": order_id}).order)
    status, amended = rest.call("PATCH", f"/api/v1/orders/{order_id}", {"new_price": "97"})
    assert status == 200 and amended["order"]["price"] == "97"
    assert amended["order"] == as_json(grpc_call(rest, "orders", "GetOrder", {"order_id": order_id}).order)
    status, cancelled = rest.call("DELETE", f"/api/v1/orders/{order_id}")
    assert status == 200 and cancelled["order"]["status"] == "ORDER_STATUS_CANCELLED"
    status, again = rest.call("POST", "/api/v1/orders", {**ORDER, "price": "98", "client_id": "rest-2"})
    status, cancelled_all = rest.call("POST", "/api/v1/orders:cancelAll", {"account": "alice"})
    assert status == 200 and again["order"]["order_id"] in cancelled_all["order_ids"]
    status, valid = rest.call("POST", "/api/v1/orders:validate", {**ORDER, "qty": "0.3"})
    assert (status, valid) == (200, as_json(grpc_call(rest, "risk", "ValidateOrder", {"order": {**ORDER, "qty": "0.3"}})))


def test_operator_calls_change_what_grpc_reads(rest: Rest) -> None:
    status, halted = rest.call("PUT", "/api/v1/risk/halts/ETH-USD", {"reason": "rest test"})
    assert status == 200 and halted["state"]["halted"] and halted["state"]["halt_reason"] == "rest test"
    state = as_json(grpc_call(rest, "risk", "GetRiskState", {}))
    assert halted["state"] in state["symbols"]
    status, resumed = rest.call("DELETE", "/api/v1/risk/halts/ETH-USD")
    assert status == 200 and not resumed["state"]["halted"]
    status, limits = rest.call("PUT", "/api/v1/risk/limits",
                               {"limits": [{"key": "max_order_notional", "value": "100000", "account": "alice"}]})
    assert status == 200, limits
    assert limits["limits"][0] in as_json(grpc_call(rest, "risk", "GetLimits", {"account": "alice"}))["limits"]
    status, switch = rest.call("PUT", "/api/v1/risk/kill-switch", {"on": False, "reason": "rest test"})
    assert status == 200 and switch["kill_switch"] == as_json(grpc_call(rest, "risk", "GetRiskState", {}))["kill_switch"]


def test_strategies_start_read_and_stop_over_rest(rest: Rest) -> None:
    kinds = rest.call("GET", "/api/v1/strategy-kinds")[1]["kinds"]
    kind = next(k for k in kinds if k["kind"] == "market_making")
    status, started = rest.call("POST", "/api/v1/strategies", {"kind": kind["kind"], "account": "alice",
                                                               "symbols": ["BTC-USD"], "params": {"symbol": "BTC-USD"}})
    assert status == 200, started
    strategy_id = started["status"]["id"]
    status, read = rest.call("GET", f"/api/v1/strategies/{strategy_id}")
    expected = as_json(grpc_call(rest, "strategy", "GetStrategyStatus", {"id": strategy_id}))
    assert status == 200 and _stable(read) == _stable(expected)
    status, stopped = rest.call("DELETE", f"/api/v1/strategies/{strategy_id}")
    assert status == 200 and stopped["status"]["state"] == "STATE_STOPPED"


def _stable(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer["status"].items() if k not in ("position", "pnl", *VOLATILE)}


# (call over REST, the same call's gRPC method and request, token role and accounts)
REFUSALS = [
    ("GET", "/api/v1/orders?account=bob", "orders", "ListOrders", {"account": "bob"}, "trader", ("alice",)),
    ("GET", "/api/v1/positions", "orders", "GetPositions", {}, "viewer", ()),
    ("POST", "/api/v1/orders", "orders", "PlaceOrder", SELL, "trader", ("alice",)),
    ("POST", "/api/v1/orders", "orders", "PlaceOrder", ORDER, "viewer", ("alice",)),
    ("PUT", "/api/v1/risk/kill-switch", "risk", "SetKillSwitch", {"on": True}, "trader", ("alice",)),
    ("PUT", "/api/v1/risk/halts/BTC-USD", "risk", "Halt", {"symbol": "BTC-USD"}, "viewer", ()),
    ("GET", "/api/v1/books/XYZ-USD", "marketdata", "GetBook", {"symbol": "XYZ-USD"}, "viewer", ()),
    ("GET", "/api/v1/books/BTC-USD?depth=100000", "marketdata", "GetBook", {"symbol": "BTC-USD", "depth": 100000},
     "viewer", ()),
    ("GET", "/api/v1/orders/nope", "orders", "GetOrder", {"order_id": "nope"}, "viewer", ()),
    ("POST", "/api/v1/alerts/nope:ack", "alerts", "AckAlert", {"id": "nope"}, "trader", ("alice",)),
    ("POST", "/api/v1/orders", "orders", "PlaceOrder", {**ORDER, "price": "100.001"}, "trader", ("alice",)),
]


@pytest.mark.parametrize(("verb", "path", "service", "method", "body", "role", "accounts"), REFUSALS,
                         ids=[f"{r[0]} {r[1]} {r[5]}" for r in REFUSALS])
def test_refusals_are_grpcs_with_an_http_status(rest: Rest, verb: str, path: str, service: str, method: str,
                                                body: dict[str, Any], role: str, accounts: tuple[str, ...]) -> None:
    token = rest.token(role, accounts)
    route = next(r for r in ROUTES if r.method == method)
    status, answer = rest.call(verb, path, body if route.body else None, token=token)
    with pytest.raises(grpc.RpcError) as refused:
        grpc_call(rest, service, method, body, token)
    assert status == HTTP_STATUS[refused.value.code()], answer
    assert answer["code"] == refused.value.code().name
    assert answer["message"] == refused.value.details()
    reasons = [v for k, v in (refused.value.trailing_metadata() or ()) if k == "tradsys-reason"]
    assert answer["details"] == [{"reason": r} for r in reasons]


def test_a_trader_reads_its_own_orders(rest: Rest, traded: dict[str, str]) -> None:
    token = rest.token("trader", ("alice",))
    status, answer = rest.call("GET", f"/api/v1/orders/{traded['buy']}", token=token)
    assert status == 200
    status, answer = rest.call("GET", f"/api/v1/orders/{traded['sell']}", token=token)
    assert status == 403 and answer["code"] == "PERMISSION_DENIED"
    status, answer = rest.call("GET", "/api/v1/orders", token=token)
    assert status == 200 and {o["account"] for o in answer["orders"]} == {"alice"}


@pytest.mark.parametrize(("token", "code"), [(None, 401), ("not-a-jwt", 401), ("a.b.c", 401)])
def test_without_a_valid_token_every_route_is_401(rest: Rest, token: str | None, code: int) -> None:
    for route in ROUTES:
        path = route.template.replace("{symbol}", "BTC-USD").replace("{order_id}", "1").replace("{id}", "x")
        status, answer = rest.call(route.verb, path, {} if route.body else None, token=token)
        assert (status, answer["code"]) == (code, "UNAUTHENTICATED"), (route, answer)


BAD = [
    ("POST", "/api/v1/orders", b"{not json", 400),
    ("POST", "/api/v1/orders", b"[1, 2]", 400),
    ("POST", "/api/v1/orders", b'{"side": "SIDE_SIDEWAYS"}', 400),
    ("POST", "/api/v1/orders", b'{"no_such_field": 1}', 400),
    ("GET", "/api/v1/books/BTC-USD?depth=-1", b"", 400),
    ("GET", "/api/v1/books/BTC-USD?depth=ten", b"", 400),
    ("GET", "/api/v1/books/BTC-USD?colour=red", b"", 400),
    ("GET", "/api/v1/books/BTC-USD?depth=1&depth=2", b"", 400),
    ("GET", "/api/v1/books/BTC-USD?symbol=ETH-USD", b"", 400),
    ("POST", "/api/v1/orders?symbol=BTC-USD", b"{}", 400),
    ("GET", "/api/v1/instruments", b"{}", 400),
    ("GET", "/api/v1/nothing-here", b"", 404),
    ("PUT", "/api/v1/orders", b"{}", 405),
]


@pytest.mark.parametrize(("verb", "path", "raw", "status"), BAD, ids=[f"{b[0]} {b[1]} {b[2]!r}" for b in BAD])
def test_malformed_requests_are_refused_with_a_reason(rest: Rest, verb: str, path: str, raw: bytes, status: int) -> None:
    got, answer = rest.call(verb, path, raw=raw)
    assert got == status, answer
    assert set(answer) == {"code", "message", "details"} and answer["message"]


def test_a_body_over_the_bound_is_refused_and_the_daemon_serves_on(rest: Rest) -> None:
    status, answer = rest.call("POST", "/api/v1/orders", raw=b"{" + b" " * (5 * 1024 * 1024) + b"}")
    assert status == 413
    fresh = Rest(rest.daemon)
    assert fresh.call("GET", "/api/v1/instruments")[0] == 200
