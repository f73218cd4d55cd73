"""The gRPC server: the four services, health, reflection, and per-call metrics."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tradsys.daemon.metrics import Metrics
from tradsys.proto import alerts_pb2, alerts_pb2_grpc, marketdata_pb2, marketdata_pb2_grpc, orders_pb2, orders_pb2_grpc
from tradsys.proto import risk_pb2, risk_pb2_grpc, strategy_pb2, strategy_pb2_grpc

SERVICES = (
    orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
    marketdata_pb2.DESCRIPTOR.services_by_name["MarketDataService"].full_name,
    risk_pb2.DESCRIPTOR.services_by_name["RiskService"].full_name,
    strategy_pb2.DESCRIPTOR.services_by_name["StrategyService"].full_name,
    alerts_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name,
)
ORDER_ENTRY = {"/tradsys.v1.OrderService/PlaceOrder", "/tradsys.v1.OrderService/CancelOrder",
               "/tradsys.v1.OrderService/AmendOrder"}


class PortInUse(OSError):
    pass


class _Measured(grpc.ServerInterceptor):
    """Counts every call by method and final status code; times order entry."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith("/grpc."):
            return handler
        method = details.method.rsplit("/", 1)[-1]
        metrics, timed = self.metrics, details.method in ORDER_ENTRY

        def wrap_unary(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                start = time.perf_counter()
                try:
                    return behavior(request, context)
                finally:
                    code = context.code() or grpc.StatusCode.OK
                    metrics.grpc_requests.labels(method, code.name).inc()
                    if timed:
                        metrics.observe_ack(method, time.perf_counter() - start)
            return call

        def wrap_stream(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    yield from behavior(request, context)
                finally:
                    metrics.grpc_requests.labels(method, (context.code() or grpc.StatusCode.OK).name).inc()
            return call

        if handler.unary_unary:
            return handler._replace(unary_unary=wrap_unary(handler.unary_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=wrap_stream(handler.unary_stream))
        if handler.stream_stream:
            return handler._replace(stream_stream=wrap_stream(handler.stream_stream))
        return handler


def build_server(
    host: str, port: int, servicers: dict[str, Any], metrics: Metrics, max_message_bytes: int,
    credentials: grpc.ServerCredentials | None = None, workers: int = 32,
) -> tuple[grpc.Server, health.HealthServicer, int]:
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tradsys-grpc"),
        interceptors=[_Measured(metrics)],
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )
    orders_pb2_grpc.add_OrderServiceServicer_to_server(servicers["orders"], server)
    marketdata_pb2_grpc.add_MarketDataServiceServicer_to_server(servicers["marketdata"], server)
    risk_pb2_grpc.add_RiskServiceServicer_to_server(servicers["risk"], server)
    strategy_pb2_grpc.add_StrategyServiceServicer_to_server(servicers["strategy"], server)
    alerts_pb2_grpc.add_AlertServiceServicer_to_server(servicers["alerts"], server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{host}:{port}"
    try:
        bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise PortInUse(f"cannot listen for gRPC on {address}: the port is in use or the address is not local")
    return server, health_servicer, bound


def set_serving(health_servicer: health.HealthServicer, serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", *SERVICES):
        health_servicer.set(name, status)
