"""OrderService: orders in; acknowledgements out only once the command is durable."""

import base64
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from tradsys.daemon.auth import Principal
from tradsys.daemon.core import Core, Unavailable
from tradsys.daemon.hub import Hub
from tradsys.daemon.records import fill_records, order_record, position_records
from tradsys.daemon.rpc.convert import (
    STATUS_NAMES,
    STATUSES,
    BadRequest,
    fill_msg,
    order_event_msg,
    order_msg,
    place_command,
    position_msg,
)
from tradsys.daemon.rpc.gate import Gate, default_account, error_code, refuse
from tradsys.daemon.rpc.streaming import pump
from tradsys.engine import Event, OrderCancelled, OrderFilled, OrderRejected, Venue
from tradsys.proto import common_pb2 as common
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc

MAX_PAGE = 1000


def outcome(cmd: dict[str, Any], result: list[Event] | Exception, venue: Venue) -> dict[str, Any]:
    """One command's result as a record, built on the engine thread. The command's own order is
    found by id: the events may also hold expiries and fills of other orders."""
    if isinstance(result, Exception):
        return {"rejected": getattr(result, "reason", "invalid_argument"), "message": getattr(result, "message", str(result))}
    oid = cmd.get("id")
    order = None
    fills: list[dict[str, Any]] = []
    cancelled: list[str] = []
    for event in result:
        if isinstance(event, OrderRejected):
            if event.order_id == oid:
                return {"rejected": event.reason, "message": event.message, "order_id": oid}
        elif isinstance(event, OrderFilled):
            fills += fill_records(venue, event)
            if oid in (event.taker.id, event.maker.id):
                order = event.taker if event.taker.id == oid else event.maker
        else:
            if event.order.id == oid:
                order = event.order
            if isinstance(event, OrderCancelled):
                cancelled.append(event.order.id)
    return {"order": None if order is None else order_record(venue, order), "fills": fills, "cancelled": cancelled}


def outcomes(commands: list[dict[str, Any]], results: list[list[Event] | Exception], venue: Venue) -> list[dict[str, Any]]:
    return [outcome(cmd, result, venue) for cmd, result in zip(commands, results)]


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

    def _run(self, context: grpc.ServicerContext, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            remaining = context.time_remaining()
            timeout = 30.0 if remaining is None else min(30.0, max(0.5, remaining))
            return self.core.execute(commands, outcomes, timeout=timeout)
        except Unavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except TimeoutError:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the engine did not answer in time")

    def _order_account(self, context: grpc.ServicerContext, order_id: str) -> str:
        row = self.store.get_order(order_id) if order_id else None
        if row is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no order {order_id!r}")
        return row["account"]

    def PlaceOrder(self, request: pb.PlaceOrderRequest, context: grpc.ServicerContext) -> pb.PlaceOrderResponse:
        principal = self.gate.authenticate(context)
        account = default_account(context, principal, request.account)
        self.gate.authorize(context, principal, "trade", account)
        try:
            cmd = place_command(request, account)
        except BadRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        (result,) = self._run(context, [cmd])
        if "rejected" in result:
            refuse(context, result["rejected"], result["message"])
        own = [f for f in result["fills"] if f["order_id"] == result["order"]["id"]]
        return pb.PlaceOrderResponse(order=order_msg(result["order"]), fills=[fill_msg(f) for f in own])

    def CancelOrder(self, request: pb.CancelOrderRequest, context: grpc.ServicerContext) -> pb.CancelOrderResponse:
        principal = self.gate.authenticate(context)
        account = self._order_account(context, request.order_id)
        self.gate.authorize(context, principal, "trade", account)
        (result,) = self._run(context, [{"op": "cancel", "id": request.order_id, "account": account}])
        if "rejected" in result:
            refuse(context, result["rejected"], result["message"])
        return pb.CancelOrderResponse(order=order_msg(result["order"]))

    def CancelAll(self, request: pb.CancelAllRequest, context: grpc.ServicerContext) -> pb.CancelAllResponse:
        principal = self.gate.authenticate(context)
        account = request.account or None
        if account is None and principal.role != "admin":
            account = default_account(context, principal, "")
        self.gate.authorize(context, principal, "trade" if account else "admin", account)
        cmd: dict[str, Any] = {"op": "cancel_all"}
        if account:
            cmd["account"] = account
        if request.symbol:
            cmd["symbol"] = request.symbol
        (result,) = self._run(context, [cmd])
        if "rejected" in result:
            refuse(context, result["rejected"], result["message"])
        return pb.CancelAllResponse(order_ids=result["cancelled"])

    def AmendOrder(self, request: pb.AmendOrderRequest, context: grpc.ServicerContext) -> pb.AmendOrderResponse:
        principal = self.gate.authenticate(context)
        account = self._order_account(context, request.order_id)
        self.gate.authorize(context, principal, "trade", account)
        cmd: dict[str, Any] = {"op": "amend", "id": request.order_id, "account": account}
        if request.new_price:
            cmd["price"] = request.new_price
        if request.new_open_qty:
            cmd["qty"] = request.new_open_qty
        if len(cmd) == 3:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "amend needs new_price or new_open_qty")
        (result,) = self._run(context, [cmd])
        if "rejected" in result:
            refuse(context, result["rejected"], result["message"])
        return pb.AmendOrderResponse(order=order_msg(result["order"]))

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
        pending: queue.Queue[tuple[int, list[Any], Any] | None] = queue.Queue(maxsize=64)

        def read() -> None:
            try:
                for batch in request_iterator:
                    pending.put(self._submit_batch(principal, batch))
            except Exception as exc:  # the client went away or sent garbage: end the stream
                pending.put((0, [], exc))
            finally:
                pending.put(None)

        threading.Thread(target=read, name="tradsys-order-entry", daemon=True).start()
        while True:
            item = pending.get()
            if item is None:
                return
            seq, slots, future = item
            if isinstance(future, Exception):
                if isinstance(future, Unavailable):
                    context.abort(grpc.StatusCode.UNAVAILABLE, str(future))
                return
            try:
                results = iter(future.result(timeout=30) if future is not None else [])
            except Unavailable as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            ack = pb.OrderBatchAck(seq=seq)
            add = ack.results.add  # filled in place: appending a built message copies it
            for slot in slots:
                if slot is None:
                    _add_result(add, next(results))
                else:
                    add().CopyFrom(slot)
            yield ack

    def _submit_batch(self, principal: Principal, batch: pb.OrderBatch) -> tuple[int, list[Any], Any]:
        """Commands for the valid requests; refusals known up front are placed as ready results."""
        commands: list[dict[str, Any]] = []
        slots: list[Any] = []
        single = principal.accounts[0] if len(principal.accounts) == 1 and principal.accounts[0] != "*" else None
        for req in batch.requests:
            kind = req.WhichOneof("request")
            try:
                if kind == "place":
                    account = req.place.account or single
                    if account is None:
                        raise BadRequest("account is required (the token allows several)")
                    if not principal.can("trade", account):
                        slots.append(_error(common.ERROR_CODE_PERMISSION_DENIED, f"may not trade account {account}"))
                        continue
                    commands.append(place_command(req.place, account))
                elif kind in ("cancel", "amend"):
                    body = getattr(req, kind)
                    cmd: dict[str, Any] = {"op": kind, "id": body.order_id}
                    if principal.role != "admin":
                        row = self.store.get_order(body.order_id) if single is None else {"account": single}
                        if row is None or not principal.can("trade", row["account"]):
                            slots.append(_error(common.ERROR_CODE_NOT_FOUND, f"no order {body.order_id!r} you may trade"))
                            continue
                        cmd["account"] = row["account"]
                    if kind == "amend":
                        if body.new_price:
                            cmd["price"] = body.new_price
                        if body.new_open_qty:
                            cmd["qty"] = body.new_open_qty
                    commands.append(cmd)
                else:
                    raise BadRequest("empty request")
            except BadRequest as exc:
                slots.append(_error(common.ERROR_CODE_INVALID_ARGUMENT, str(exc)))
                continue
            slots.append(None)
        future = self.core.submit(commands, entry_outcomes) if commands else None
        return batch.seq, slots, future


def entry_outcomes(commands: list[dict[str, Any]], results: list[list[Event] | Exception], venue: Venue) -> list[tuple]:
    """The little a batch ack needs per command, (order id, client id, status, reason, message),
    without building full records: this runs on the engine thread for every streamed order."""
    out = []
    for cmd, result in zip(commands, results):
        oid = cmd.get("id", "")
        if isinstance(result, Exception):
            out.append((oid, "", "rejected", getattr(result, "reason", "invalid_argument"), str(result)))
            continue
        status = "unknown"
        for event in result:
            if isinstance(event, OrderRejected):
                if event.order_id == oid:
                    status = ("rejected", event.reason, event.message)
                    break
            elif not isinstance(event, OrderFilled) and event.order.id == oid:
                status = event.order.status._value_
        if isinstance(status, tuple):
            out.append((oid, cmd.get("client_id") or "", *status))
        else:
            out.append((oid, cmd.get("client_id") or "", status, "", ""))
    return out


def _error(code: int, message: str) -> pb.OrderResult:
    return pb.OrderResult(status=common.ORDER_STATUS_REJECTED, error=common.Error(code=code, message=message))


def _add_result(add: Any, outcome: tuple) -> None:
    order_id, client_id, status, reason, message = outcome
    if status == "rejected":
        add(order_id=order_id, client_id=client_id, status=common.ORDER_STATUS_REJECTED,
            error=common.Error(code=error_code(reason), message=f"{reason}: {message}"))
    else:
        add(order_id=order_id, client_id=client_id, status=STATUSES.get(status, 0))
