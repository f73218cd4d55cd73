"""The REST routes: one row per unary gRPC method, the only place an HTTP path is defined.

A table next to the protos rather than `google.api.http` annotations in them: the annotations need
googleapis' `annotations.proto`/`http.proto` at build time, which neither grpcio-tools nor the
protobuf runtime ships, and the build must work offline from the registries alone. A row says what
grpc-gateway's annotation would (verb, path template, `body`), and the gateway and the OpenAPI
document are both generated from it and the message descriptors.

Server-streaming and bidirectional methods have no row: the WebSocket (`/ws`, `/ws/v2`) serves them.
"""

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from tradsys.proto import alerts_pb2, marketdata_pb2, orders_pb2, risk_pb2, strategy_pb2

PREFIX = "/api/v1"
SERVICES: dict[str, ServiceDescriptor] = {
    "orders": orders_pb2.DESCRIPTOR.services_by_name["OrderService"],
    "marketdata": marketdata_pb2.DESCRIPTOR.services_by_name["MarketDataService"],
    "risk": risk_pb2.DESCRIPTOR.services_by_name["RiskService"],
    "strategy": strategy_pb2.DESCRIPTOR.services_by_name["StrategyService"],
    "alerts": alerts_pb2.DESCRIPTOR.services_by_name["AlertService"],
}
"""The daemon's servicers by the key `Daemon.start` files them under, with the service each implements."""


@dataclass(frozen=True)
class Route:
    service: str
    """A key of SERVICES."""
    method: str
    verb: str
    path: str
    """Under PREFIX; `{field}` segments fill request fields of that name."""
    body: str = ""
    """As grpc-gateway's `body`: "" none (fields from the path and the query), "*" the whole request
    message, or the name of the one message field the body holds."""
    summary: str = ""
    example: dict[str, Any] = field(default_factory=dict)
    """A request body for the documentation (and the Swagger UI's "Try it out")."""

    @property
    def descriptor(self) -> MethodDescriptor:
        return SERVICES[self.service].methods_by_name[self.method]

    @property
    def template(self) -> str:
        return PREFIX + self.path


ORDER_EXAMPLE = {"account": "default", "symbol": "BTC-USD", "side": "SIDE_BUY", "type": "ORDER_TYPE_LIMIT",
                 "tif": "TIME_IN_FORCE_GTC", "price": "60000", "qty": "0.01", "client_id": "my-order-1"}

ROUTES: tuple[Route, ...] = (
    Route("orders", "PlaceOrder", "POST", "/orders", "*", "Place an order; answered once it is durable",
          ORDER_EXAMPLE),
    Route("orders", "ListOrders", "GET", "/orders", summary="Order history, newest first, paged"),
    Route("orders", "GetOrder", "GET", "/orders/{order_id}", summary="One order"),
    Route("orders", "AmendOrder", "PATCH", "/orders/{order_id}", "*", "Change a resting order's price or quantity",
          {"new_price": "60010"}),
    Route("orders", "CancelOrder", "DELETE", "/orders/{order_id}", summary="Cancel one order"),
    Route("orders", "CancelAll", "POST", "/orders:cancelAll", "*", "Cancel every open order of an account",
          {"account": "default", "symbol": "BTC-USD"}),
    Route("risk", "ValidateOrder", "POST", "/orders:validate", "order", "Dry-run the pre-trade checks",
          ORDER_EXAMPLE),
    Route("orders", "ListFills", "GET", "/fills", summary="Fill history, paged"),
    Route("orders", "GetPositions", "GET", "/positions", summary="Positions of the accounts the token reads"),
    Route("marketdata", "ListInstruments", "GET", "/instruments", summary="Tradable symbols and their grids"),
    Route("marketdata", "GetBook", "GET", "/books/{symbol}", summary="The order book, `depth` levels a side"),
    Route("marketdata", "GetTrades", "GET", "/trades/{symbol}", summary="Recent public trades, newest last"),
    Route("marketdata", "GetBars", "GET", "/bars/{symbol}", summary="OHLCV bars, oldest first"),
    Route("risk", "GetRiskState", "GET", "/risk", summary="Kill switch, halts and circuit breakers"),
    Route("risk", "GetLimits", "GET", "/risk/limits", summary="Limits in force"),
    Route("risk", "SetLimits", "PUT", "/risk/limits", "*", "Set or remove limits, all or none (admin)",
          {"limits": [{"key": "max_order_notional", "value": "50000", "account": "default"}]}),
    Route("risk", "SetKillSwitch", "PUT", "/risk/kill-switch", "*", "Stop or allow all new orders (admin)",
          {"on": False, "reason": "manual"}),
    Route("risk", "Halt", "PUT", "/risk/halts/{symbol}", "*", "Halt one symbol (admin)", {"reason": "manual"}),
    Route("risk", "Resume", "DELETE", "/risk/halts/{symbol}", summary="Lift a halt or a tripped breaker (admin)"),
    Route("strategy", "ListStrategies", "GET", "/strategy-kinds", summary="Strategy kinds and their parameters"),
    Route("strategy", "ListRunning", "GET", "/strategies", summary="Strategy instances"),
    Route("strategy", "StartStrategy", "POST", "/strategies", "*", "Start a strategy instance (admin)",
          {"kind": "market_making", "params": {"spread_bps": "2", "quantity": "0.01"}, "account": "default",
           "symbols": ["BTC-USD"]}),
    Route("strategy", "GetStrategyStatus", "GET", "/strategies/{id}", summary="One strategy instance"),
    Route("strategy", "StopStrategy", "DELETE", "/strategies/{id}", summary="Stop a strategy instance (admin)"),
    Route("alerts", "ListAlerts", "GET", "/alerts", summary="Alert history"),
    Route("alerts", "AckAlert", "POST", "/alerts/{id}:ack", summary="Acknowledge an alert"),
)


def streamed() -> list[MethodDescriptor]:
    """The methods REST leaves to the WebSocket: those that stream."""
    return [m for s in SERVICES.values() for m in s.methods if m.server_streaming or m.client_streaming]
