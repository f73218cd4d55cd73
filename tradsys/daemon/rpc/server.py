"""The gRPC server: the five services, health, reflection, per-call metrics and the stream limit.

It is a `grpc.aio` server on a loop thread of its own (uvloop: its wake-ups from other threads and
its iterations cost less than asyncio's, and an order's round trip has several). Long-lived streams
are coroutines on that loop and hold no thread, so however many are open, unary calls keep theirs.
The order-entry calls (PlaceOrder, CancelOrder, CancelAll, AmendOrder) are coroutines too: they
hand their command to the engine thread and await its answer without holding a thread
(`entry.execute_async`). The other unary handlers stay synchronous and run on a thread pool
(grpc.aio's migration pool), where a call may run the engine's cycle itself (`Core.execute`,
`Core.query`) or read the order history, and block without stalling anyone.
"""

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
import uvloop
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tradsys.daemon.metrics import Metrics
from tradsys.proto import alerts_pb2, alerts_pb2_grpc, marketdata_pb2, marketdata_pb2_grpc, orders_pb2, orders_pb2_grpc
from tradsys.proto import risk_pb2, risk_pb2_grpc, strategy_pb2, strategy_pb2_grpc

T = TypeVar("T")
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


class _Recorded:
    """A synchronous handler's context that remembers the status it was given, for the metrics:
    grpc.aio's synchronous context cannot be asked for its code afterwards."""

    __slots__ = ("_context", "code")

    def __init__(self, context: Any) -> None:
        self._context = context
        self.code = grpc.StatusCode.OK

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self._context.abort(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code
        self._context.set_code(code)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _Measured(grpc.aio.ServerInterceptor):
    """Counts every call by method and final status code; times order entry; refuses a stream
    beyond `max_streams` open ones with RESOURCE_EXHAUSTED."""

    def __init__(self, metrics: Metrics, max_streams: int) -> None:
        self.metrics = metrics
        self.max_streams = max_streams
        self.streams = 0
        """Streams open now; read and changed on the loop thread only."""
        self._wrapped: dict[str, tuple[Any, Any]] = {}
        """Per method, the handler the server found and its wrapped one: wrapping is done once,
        not for every call."""

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith("/grpc."):
            return handler
        known = self._wrapped.get(details.method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap(handler, details.method)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: Any, path: str) -> Any:
        method = path.rsplit("/", 1)[-1]
        metrics, timed = self.metrics, path in ORDER_ENTRY
        parse = handler.request_deserializer
        bad_request = f"the request is not a valid {method} request message"

        def wrap_unary(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
            def call(raw: bytes, context: Any) -> Any:
                start = time.perf_counter()
                recorded = _Recorded(context)
                try:
                    try:
                        request = parse(raw)
                    except DecodeError:
                        recorded.abort(grpc.StatusCode.INVALID_ARGUMENT, bad_request)
                    return behavior(request, recorded)
                except Exception:
                    if recorded.code is grpc.StatusCode.OK:
                        recorded.code = grpc.StatusCode.UNKNOWN
                    raise
                finally:
                    metrics.grpc_requests.labels(method, recorded.code.name).inc()
                    if timed:
                        metrics.observe_ack(method, time.perf_counter() - start)
            return call

        def wrap_unary_async(behavior: Callable[[Any, Any], Coroutine[Any, Any, Any]]) -> Callable[[Any, Any], Any]:
            async def call(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
                start = time.perf_counter()
                ended = grpc.StatusCode.OK
                try:
                    try:
                        request = parse(raw)
                    except DecodeError:
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad_request)
                    return await behavior(request, context)
                except asyncio.CancelledError:
                    ended = grpc.StatusCode.CANCELLED
                    raise
                except Exception:
                    ended = grpc.StatusCode.UNKNOWN
                    raise
                finally:
                    metrics.grpc_requests.labels(method, (context.code() or ended).name).inc()
                    if timed:
                        metrics.observe_ack(method, time.perf_counter() - start)
            return call

        def wrap_stream(behavior: Callable[[Any, Any], Coroutine[Any, Any, None]], unary: bool) -> Callable[[Any, Any], Any]:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> None:
                if unary:
                    try:
                        request = parse(request)
                    except DecodeError:
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad_request)
                if self.streams >= self.max_streams:
                    metrics.grpc_requests.labels(method, grpc.StatusCode.RESOURCE_EXHAUSTED.name).inc()
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                        f"{self.streams} streams are open, the daemon's limit ([grpc] max_streams)")
                self.streams += 1
                try:
                    await behavior(request, context)
                finally:
                    self.streams -= 1
                    metrics.grpc_requests.labels(method, (context.code() or grpc.StatusCode.OK).name).inc()
            return call

        # Requests of unary and server-streaming calls are parsed here, so that a malformed one is
        # INVALID_ARGUMENT, not the UNKNOWN grpc.aio makes of a deserializer's exception.
        if handler.unary_unary:
            behavior = handler.unary_unary
            wrap = wrap_unary_async if inspect.iscoroutinefunction(behavior) else wrap_unary
            return handler._replace(unary_unary=wrap(behavior), request_deserializer=None)
        # Stream handlers write serialized bytes (`streaming.pump` serializes an item once for all).
        if handler.unary_stream:
            return handler._replace(unary_stream=wrap_stream(handler.unary_stream, True), request_deserializer=None,
                                    response_serializer=None)
        if handler.stream_stream:
            return handler._replace(stream_stream=wrap_stream(handler.stream_stream, False), response_serializer=None)
        return handler


class GrpcServer:
    """Builds, binds, starts and stops the server on its loop thread; callable from any thread."""

    def __init__(
        self, host: str, port: int, servicers: dict[str, Any], metrics: Metrics, max_message_bytes: int,
        credentials: grpc.ServerCredentials | None = None, workers: int = 32, max_streams: int = 5000,
    ) -> None:
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tradsys-grpc", daemon=True)
        self._thread.start()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tradsys-grpc")
        self.interceptor = _Measured(metrics, max_streams)
        try:
            self.port = self._run(self._build(host, port, servicers, max_message_bytes, credentials))
        except BaseException:
            self._end_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _build(self, host: str, port: int, servicers: dict[str, Any], max_message_bytes: int,
                     credentials: grpc.ServerCredentials | None) -> int:
        server = grpc.aio.server(
            migration_thread_pool=self._pool,
            interceptors=[self.interceptor],
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
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        await self._set_serving(False)
        address = f"{host}:{port}"
        try:
            bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise PortInUse(f"cannot listen for gRPC on {address}: the port is in use or the address is not local")
        self.server = server
        return bound

    def start(self) -> None:
        self._run(self.server.start())

    def set_serving(self, serving: bool) -> None:
        self._run(self._set_serving(serving))

    async def _set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *SERVICES):
            await self.health.set(name, status)

    def stop(self, grace: float) -> None:
        """Refuse new calls, give those under way `grace` seconds, then end the loop thread."""
        try:
            self._run(self.server.stop(grace), timeout=grace + 5)
        finally:
            self._end_loop()
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _end_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
