"""OrderService: orders in; acknowledgements out only once the command is durable."""

import asyncio
import base64
import json
from functools import partial
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from tradsys.daemon.core import Core, Unavailable
from tradsys.daemon.entry import READS_HISTORY, Ack, Batch, Refused, execute_async, submit
from tradsys.daemon.records import position_records
from tradsys.daemon.rpc.convert import STATUS_NAMES, STATUSES, entry_response, fill_msg, order_event_msg, order_msg, position_msg
from tradsys.daemon.rpc.gate import Gate, refuse, unavailable_status
from tradsys.daemon.rpc.streaming import Fanout, Stream, checked, pump
from tradsys.daemon.store.projector import ProjectionLag
from tradsys.proto import common_pb2 as common
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc

T = TypeVar("T")
MAX_PAGE = 1000
MAX_UNACKED = 64
"""Batches of one OrderEntry stream submitted and not yet acknowledged..."""
MAX_UNACKED_ORDERS = 5_000
"""...and orders in them (a batch bigger than this goes alone): several streams together stay
within the engine's queue bound instead of being refused by it."""
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
    def __init__(self, core: Core, store: Any, fanout: Fanout, gate: Gate) -> None:
        self.core = core
        self.store = store
        self.fanout = fanout
        self.gate = gate

    async def _enter(self, context: grpc.aio.ServicerContext, kind: str, request: Any) -> Any:
        """One order-entry request (`entry.execute_async`), its answer as the orders.proto response.

        A coroutine on the gRPC loop rather than a synchronous handler on the unary pool: another
        thread does the work either way, and handing it to the engine thread and awaiting its
        `Promise` costs less than the pool's hand-offs (`bench/unary_floor.py`). A cancel or amend
        reads the order history off the loop."""
        principal = await checked(context, self.gate.authenticate)
        remaining = context.time_remaining()
        timeout = 30.0 if remaining is None else min(30.0, max(0.5, remaining))
        try:
            return entry_response(kind, await execute_async(self.core, principal, kind, request, self.store.get_order,
                                                            timeout))
        except Refused as refused:
            await checked(context, partial(self._deny, refused=refused))
        except Unavailable as exc:
            await context.abort(unavailable_status(exc), str(exc))
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the engine did not answer in time")

    def _deny(self, context: grpc.ServicerContext, refused: Refused) -> NoReturn:
        if refused.reason:
            refuse(context, refused.reason, refused.message)
        if refused.code == "permission_denied":
            self.gate.deny(context, refused.message, "trade")
        context.abort(STATUS_CODES[refused.code], refused.message)

    async def PlaceOrder(self, request: pb.PlaceOrderRequest, context: grpc.aio.ServicerContext) -> pb.PlaceOrderResponse:
        return await self._enter(context, "place", request)

    async def CancelOrder(self, request: pb.CancelOrderRequest, context: grpc.aio.ServicerContext) -> pb.CancelOrderResponse:
        return await self._enter(context, "cancel", request)

    async def CancelAll(self, request: pb.CancelAllRequest, context: grpc.aio.ServicerContext) -> pb.CancelAllResponse:
        return await self._enter(context, "cancel_all", request)

    async def AmendOrder(self, request: pb.AmendOrderRequest, context: grpc.aio.ServicerContext) -> pb.AmendOrderResponse:
        return await self._enter(context, "amend", request)

    def _history(self, context: grpc.ServicerContext, read: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A read of the order history; UNAVAILABLE if it cannot catch up with the journal."""
        try:
            return read(*args, **kwargs)
        except ProjectionLag as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    def GetOrder(self, request: pb.GetOrderRequest, context: grpc.ServicerContext) -> pb.GetOrderResponse:
        principal = self.gate.authenticate(context)
        row = self._history(context, self.store.get_order, request.order_id) if request.order_id else None
        if row is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no order {request.order_id!r}")
        self.gate.authorize(context, principal, "read", row["account"])
        return pb.GetOrderResponse(order=order_msg(row))

    def ListOrders(self, request: pb.ListOrdersRequest, context: grpc.ServicerContext) -> pb.ListOrdersResponse:
        principal = self.gate.authenticate(context)
        account = self.gate.read_scope(context, principal, request.account)
        statuses = [STATUS_NAMES[s] for s in request.statuses if s in STATUS_NAMES] or None
        rows, next_key = self._history(
            context, self.store.list_orders, account=account, symbol=request.symbol or None, statuses=statuses,
            since_ns=request.since_ns or None, until_ns=request.until_ns or None,
            limit=min(request.page_size or 100, MAX_PAGE), before_key=_key(context, request.page_token),
        )
        return pb.ListOrdersResponse(orders=[order_msg(r) for r in rows], next_page_token=_token(next_key))

    def ListFills(self, request: pb.ListFillsRequest, context: grpc.ServicerContext) -> pb.ListFillsResponse:
        principal = self.gate.authenticate(context)
        account = self.gate.read_scope(context, principal, request.account)
        rows, next_key = self._history(
            context, self.store.list_fills, account=account, symbol=request.symbol or None, order_id=request.order_id or None,
            since_ns=request.since_ns or None, until_ns=request.until_ns or None,
            limit=min(request.page_size or 100, MAX_PAGE), before_key=_key(context, request.page_token),
        )
        return pb.ListFillsResponse(fills=[fill_msg(r) for r in rows], next_page_token=_token(next_key))

    def GetPositions(self, request: pb.GetPositionsRequest, context: grpc.ServicerContext) -> pb.GetPositionsResponse:
        principal = self.gate.authenticate(context)
        account = self.gate.read_scope(context, principal, request.account)
        records = self.core.query(lambda venue: position_records(venue, account))
        return pb.GetPositionsResponse(positions=[position_msg(r) for r in records])

    async def StreamOrderEvents(self, request: pb.StreamOrderEventsRequest, context: grpc.aio.ServicerContext) -> None:
        account = await checked(
            context, lambda c: self.gate.read_scope(c, self.gate.authenticate(c), request.account))
        symbol = request.symbol or None

        def accept(_topic: str, item: dict[str, Any]) -> bool:
            order = item["order"]
            return (account is None or order.get("account") == account) and (
                symbol is None or order.get("symbol") in (symbol, None)
            )

        await pump(context, Stream(self.fanout, {"orders"}, accept=accept), order_event_msg)

    async def OrderEntry(self, request_iterator: AsyncIterator[pb.OrderBatch], context: grpc.aio.ServicerContext) -> None:
        """Many orders per message, pipelined: batches are submitted as they arrive and acked in
        order. Past `MAX_UNACKED` batches or `MAX_UNACKED_ORDERS` orders waiting for their acks the
        stream stops reading, so a client that sends faster than the engine applies is slowed, not
        buffered."""
        principal = await checked(context, self.gate.authenticate)
        pending: asyncio.Queue[tuple[int, Batch] | BaseException | None] = asyncio.Queue(MAX_UNACKED)
        loop = asyncio.get_running_loop()
        unacked = 0
        acked = asyncio.Event()

        async def read() -> None:
            nonlocal unacked
            try:
                async for batch in request_iterator:
                    size = len(batch.requests)
                    while unacked and unacked + size > MAX_UNACKED_ORDERS:
                        acked.clear()
                        await acked.wait()
                    unacked += size
                    if any(req.WhichOneof("request") in READS_HISTORY for req in batch.requests):
                        # the order history is read to find each order's account: not on the loop
                        sent = await loop.run_in_executor(
                            None, submit, self.core, principal, batch.requests, self.store.get_order)
                    else:
                        sent = submit(self.core, principal, batch.requests, self.store.get_order)
                    await pending.put((batch.seq, sent))
                await pending.put(None)
            except Exception as exc:  # the client went away or sent garbage: end the stream
                await pending.put(exc)

        reader = asyncio.create_task(read())
        try:
            while (item := await pending.get()) is not None:
                if isinstance(item, BaseException):
                    if isinstance(item, Unavailable):
                        await context.abort(unavailable_status(item), str(item))
                    return
                seq, batch = item
                try:
                    results = await asyncio.wrap_future(batch.future) if batch.future is not None else []
                except Unavailable as exc:
                    await context.abort(unavailable_status(exc), str(exc))
                unacked -= len(batch.slots)
                acked.set()
                ack = pb.OrderBatchAck(seq=seq)
                add = ack.results.add  # filled in place: appending a built message copies it
                for outcome in batch.acks(results):
                    _add_result(add, outcome)
                await context.write(ack.SerializeToString())
        finally:
            reader.cancel()


def _add_result(add: Any, ack: Ack) -> None:
    """An Ack as the batch ack's OrderResult."""
    refused = ack.refused
    if refused is None:
        add(order_id=ack.order_id, client_id=ack.client_id, status=STATUSES.get(ack.status, 0))
        return
    add(order_id=ack.order_id, client_id=ack.client_id, status=common.ORDER_STATUS_REJECTED,
        error=common.Error(code=refused.wire_code, message=refused.text))
