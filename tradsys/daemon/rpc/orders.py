"""OrderService: orders in; acknowledgements out only once the command is durable."""

import base64
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

import grpc

from tradsys.daemon.core import Core, Unavailable
from tradsys.daemon.entry import Ack, Refused, execute, submit
from tradsys.daemon.hub import Hub
from tradsys.daemon.records import position_records
from tradsys.daemon.rpc.convert import STATUS_NAMES, STATUSES, entry_response, fill_msg, order_event_msg, order_msg, position_msg
from tradsys.daemon.rpc.gate import Gate, refuse
from tradsys.daemon.rpc.streaming import pump
from tradsys.proto import common_pb2 as common
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc

MAX_PAGE = 1000
STATUS_CODES = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "permission_denied": grpc.StatusCode.PERMISSION_DENIED,
}
"""The status of a request refused before it reached the engine (the engine's refusals: `refuse`)."""


def _token(key: Any) -> str:
    return "" if key is None else base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _key(context: grpc.ServicerContext, token: str) -> Any:
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_token is not one this server issued")


class OrderService(pb_grpc.OrderServiceServicer):
    def __init__(self, core: Core, store: Any, hub: Hub, gate: Gate) -> None:
        self.core = core
        self.store = store
        self.hub = hub
        self.gate = gate

    def _enter(self, context: grpc.ServicerContext, kind: str, request: Any) -> Any:
        """One order-entry request (`entry.execute`), its answer as the orders.proto response."""
        principal = self.gate.authenticate(context)
        remaining = context.time_remaining()
        timeout = 30.0 if remaining is None else min(30.0, max(0.5, remaining))
        try:
            return entry_response(kind, execute(self.core, principal, kind, request, self.store.get_order, timeout))
        except Refused as refused:
            self._deny(context, refused)
        except Unavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except TimeoutError:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the engine did not answer in time")

    def _deny(self, context: grpc.ServicerContext, refused: Refused) -> NoReturn:
        if refused.reason:
            refuse(context, refused.reason, refused.message)
        if refused.code == "permission_denied":
            self.gate.deny(context, refused.message, "trade")
        context.abort(STATUS_CODES[refused.code], refused.message)

    def PlaceOrder(self, request: pb.PlaceOrderRequest, context: grpc.ServicerContext) -> pb.PlaceOrderResponse:
        return self._enter(context, "place", request)

    def CancelOrder(self, request: pb.CancelOrderRequest, context: grpc.ServicerContext) -> pb.CancelOrderResponse:
        return self._enter(context, "cancel", request)

    def CancelAll(self, request: pb.CancelAllRequest, context: grpc.ServicerContext) -> pb.CancelAllResponse:
        return self._enter(context, "cancel_all", request)

    def AmendOrder(self, request: pb.AmendOrderRequest, context: grpc.ServicerContext) -> pb.AmendOrderResponse:
        return self._enter(context, "amend", request)

    def GetOrder(self, request: pb.GetOrderRequest, context: grpc.ServicerContext) -> pb.GetOrderResponse:
        principal = self.gate.authenticate(context)
        row = self.store.get_order(request.order_id) if request.order_id else None
        if row is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no order {request.order_id!r}")
        self.gate.authorize(context, principal, "read", row["account"])
        return pb.GetOrderResponse(order=order_msg(row))

    def ListOrders(self, request: pb.ListOrdersRequest, context: grpc.ServicerContext) -> pb.ListOrdersResponse:
        principal = self.gate.authenticate(context)
        account = self.gate.read_scope(context, principal, request.account)
        statuses = [STATUS_NAMES[s] for s in request.statuses if s in STATUS_NAMES] or None
        rows, next_key = self.store.list_orders(
            account=account, symbol=request.symbol or None, statuses=statuses,
            since_ns=request.since_ns or None, until_ns=request.until_ns or None,
            limit=min(request.page_size or 100, MAX_PAGE), before_key=_key(context, request.page_token),
        )
        return pb.ListOrdersResponse(orders=[order_msg(r) for r in rows], next_page_token=_token(next_key))

    def ListFills(self, request: pb.ListFillsRequest, context: grpc.ServicerContext) -> pb.ListFillsResponse:
        principal = self.gate.authenticate(context)
        account = self.gate.read_scope(context, principal, request.account)
        rows, next_key = self.store.list_fills(
            account=account, symbol=request.symbol or None, order_id=request.order_id or None,
            since_ns=request.since_ns or None, until_ns=request.until_ns or None,
            limit=min(request.page_size or 100, MAX_PAGE), before_key=_key(context, request.page_token),
        )
        return pb.ListFillsResponse(fills=[fill_msg(r) for r in rows], next_page_token=_token(next_key))

    def GetPositions(self, request: pb.GetPositionsRequest, context: grpc.ServicerContext) -> pb.GetPositionsResponse:
        principal = self.gate.authenticate(context)
        account = self.gate.read_scope(context, principal, request.account)
        records = self.core.query(lambda venue: position_records(venue, account))
        return pb.GetPositionsResponse(positions=[position_msg(r) for r in records])

    def StreamOrderEvents(self, request: pb.StreamOrderEventsRequest, context: grpc.ServicerContext) -> Iterator[pb.OrderEvent]:
        principal = self.gate.authenticate(context)
        account = self.gate.read_scope(context, principal, request.account)
        symbol = request.symbol or None

        def accept(_topic: str, item: dict[str, Any]) -> bool:
            order = item["order"]
            return (account is None or order.get("account") == account) and (
                symbol is None or order.get("symbol") in (symbol, None)
            )

        yield from pump(self.hub, self.hub.subscribe({"orders"}, accept=accept), context, order_event_msg)

    def OrderEntry(self, request_iterator: Iterator[pb.OrderBatch], context: grpc.ServicerContext) -> Iterator[pb.OrderBatchAck]:
        """Many orders per message, pipelined: batches are submitted as they arrive and acked in order."""
        principal = self.gate.authenticate(context)
        pending: queue.Queue[tuple[int, Any] | None] = queue.Queue(maxsize=64)

        def read() -> None:
            try:
                for batch in request_iterator:
                    pending.put((batch.seq, submit(self.core, principal, batch.requests, self.store.get_order)))
            except Exception as exc:  # the client went away or sent garbage: end the stream
                pending.put((0, exc))
            finally:
                pending.put(None)

        threading.Thread(target=read, name="tradsys-order-entry", daemon=True).start()
        while True:
            item = pending.get()
            if item is None:
                return
            seq, batch = item
            if isinstance(batch, Exception):
                if isinstance(batch, Unavailable):
                    context.abort(grpc.StatusCode.UNAVAILABLE, str(batch))
                return
            try:
                results = batch.future.result(timeout=30) if batch.future is not None else []
            except Unavailable as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            ack = pb.OrderBatchAck(seq=seq)
            add = ack.results.add  # filled in place: appending a built message copies it
            for outcome in batch.acks(results):
                _add_result(add, outcome)
            yield ack


def _add_result(add: Any, ack: Ack) -> None:
    """An Ack as the batch ack's OrderResult."""
    refused = ack.refused
    if refused is None:
        add(order_id=ack.order_id, client_id=ack.client_id, status=STATUSES.get(ack.status, 0))
        return
    add(order_id=ack.order_id, client_id=ack.client_id, status=common.ORDER_STATUS_REJECTED,
        error=common.Error(code=refused.wire_code, message=refused.text))
