"""Order entry: the one path from a request and its principal to a journal command, and from the
engine's answer to an outcome, for gRPC unary calls, the `OrderEntry` stream and the WebSocket.

Every transport decodes to the orders.proto request messages, so the checks here are the only ones;
each transport translates what comes out once: an answer record, an `Ack`, or a `Refused`.
"""

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, NamedTuple

from tradsys.daemon.auth import AccountRequired, PermissionDenied, Principal, Role, own_account, require
from tradsys.daemon.core import Core, Unavailable
from tradsys.daemon.promise import Promise
from tradsys.daemon.records import fill_records, order_record
from tradsys.daemon.rpc.convert import BadRequest, place_command
from tradsys.daemon.rpc.gate import error_code
from tradsys.daemon.store.projector import ProjectionLag
from tradsys.engine import Event, OrderAccepted, OrderCancelled, OrderFilled, OrderRejected, Venue
from tradsys.proto import common_pb2 as common

READS_HISTORY = frozenset({"cancel", "amend"})
"""Requests whose command needs the order's account from the order history: a blocking SQLite read."""

Find = Callable[[str], dict[str, Any] | None]
"""The order history's row of an order id (`Store.get_order`)."""


class Refused(Exception):
    """A request refused here or by the engine.

    `code` names a common.ErrorCode in lower case (invalid_argument, permission_denied, not_found,
    or, for the engine's refusals, the code of its reason); `reason` is the engine's named reason,
    "" when the request never reached the engine.
    """

    def __init__(self, code: str, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason

    @classmethod
    def by_engine(cls, reason: str, message: str) -> "Refused":
        return cls(common.ErrorCode.Name(error_code(reason)).removeprefix("ERROR_CODE_").lower(), message, reason)

    @property
    def wire_code(self) -> int:
        """`code` as the common.ErrorCode number."""
        return common.ErrorCode.Value(f"ERROR_CODE_{self.code.upper()}")

    @property
    def text(self) -> str:
        """The message with the engine's reason in front, for wires that carry only a message."""
        return f"{self.reason}: {self.message}" if self.reason and self.message else self.message or self.reason


def command(principal: Principal, kind: str | None, body: Any, find: Find) -> dict[str, Any]:
    """The journal command for a request `principal` may make, or Refused saying why not.

    An order is traded by whoever may trade its account, which the order history names: orders
    reach the history before their id reaches anyone, since acks and events wait for durability.
    """
    try:
        if kind == "place":
            account = own_account(principal, body.account)
            require(principal, "trade", account)
            return place_command(body, account)
        if kind in READS_HISTORY:
            try:
                row = find(body.order_id) if body.order_id else None
            except ProjectionLag as exc:
                raise Unavailable(str(exc)) from None
            if row is None:
                raise Refused("not_found", f"no order {body.order_id!r}")
            require(principal, "trade", row["account"])
            cmd: dict[str, Any] = {"op": kind, "id": body.order_id, "account": row["account"]}
            if kind == "amend":
                if body.new_price:
                    cmd["price"] = body.new_price
                if body.new_open_qty:
                    cmd["qty"] = body.new_open_qty
                if len(cmd) == 3:
                    raise Refused("invalid_argument", "amend needs new_price or new_open_qty")
            return cmd
        if kind == "cancel_all":
            # every account's orders is an admin action; anyone else cancels one account's
            scope = body.account or (None if principal.role is Role.ADMIN else own_account(principal, ""))
            require(principal, "trade" if scope else "admin", scope)
            cmd = {"op": "cancel_all"}
            if scope:
                cmd["account"] = scope
            if body.symbol:
                cmd["symbol"] = body.symbol
            return cmd
    except PermissionDenied as exc:
        raise Refused("permission_denied", str(exc)) from None
    except (AccountRequired, BadRequest) as exc:
        raise Refused("invalid_argument", str(exc)) from None
    raise Refused("invalid_argument", "empty request")


# -- whole answers: unary calls and the WebSocket ---------------------------------------------------


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


def answer(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    """What a request answers, as records: place {order, fills (its own)}, cancel and amend
    {order}, cancel_all {order_ids}; Refused when the engine refused it."""
    if "rejected" in result:
        raise Refused.by_engine(result["rejected"], result["message"])
    if kind == "place":
        order = result["order"]
        return {"order": order, "fills": [f for f in result["fills"] if f["order_id"] == order["id"]]}
    if kind == "cancel_all":
        return {"order_ids": result["cancelled"]}
    return {"order": result["order"]}


async def execute_async(core: Core, principal: Principal, kind: str, body: Any, find: Find,
                        timeout: float = 30.0) -> dict[str, Any]:
    """A request, start to answer, for a caller on an event loop: Refused, or Unavailable and
    TimeoutError from the engine, say why not. The order history is read off the loop.

    The engine answers through a `Promise`: a caller cancelled mid-request (a WebSocket session
    that ends, a gRPC deadline) does not cancel the order, which still happens, unacknowledged."""
    if kind in READS_HISTORY:
        cmd = await asyncio.get_running_loop().run_in_executor(None, command, principal, kind, body, find)
    else:
        cmd = command(principal, kind, body, find)
    (result,) = await core.submit([cmd], outcomes, Promise()).result(timeout)
    return answer(kind, result)


# -- acks: the OrderEntry stream --------------------------------------------------------------------


class Ack(NamedTuple):
    """One streamed request's outcome: the little a batch ack needs."""

    order_id: str
    client_id: str
    status: str
    """The order's status after the request ("new", "filled", ...), or "rejected"."""
    refused: Refused | None = None


_ack = tuple.__new__
"""Builds an Ack from a full tuple without NamedTuple's generated constructor, a Python call."""


def acks(commands: list[dict[str, Any]], results: list[list[Event] | Exception], venue: Venue) -> list[Ack]:
    """Each command's Ack, without building records: this runs on the engine thread for every
    streamed order."""
    out = []
    for cmd, result in zip(commands, results):
        oid, client_id = cmd.get("id", ""), cmd.get("client_id") or ""
        if type(result) is list and len(result) == 1 and type(result[0]) is OrderAccepted and result[0].order.id == oid:
            # the common case, a new order that rests: its Ack without the general search below
            out.append(_ack(Ack, (oid, client_id, result[0].order.status._value_, None)))
            continue
        if isinstance(result, Exception):
            reason = getattr(result, "reason", "invalid_argument")
            out.append(Ack(oid, client_id, "rejected", Refused.by_engine(reason, getattr(result, "message", str(result)))))
            continue
        ack = Ack(oid, client_id, "unknown")
        for event in result:
            if isinstance(event, OrderRejected):
                if event.order_id == oid:
                    ack = Ack(oid, client_id, "rejected", Refused.by_engine(event.reason, event.message))
                    break
            elif not isinstance(event, OrderFilled) and event.order.id == oid:
                ack = Ack(oid, client_id, event.order.status._value_)
        out.append(ack)
    return out


class Batch(NamedTuple):
    """A batch of streamed requests on its way: refusals known up front wait in their slots, the
    rest are commands in the engine, whose `future` resolves to their Acks (None: no commands)."""

    slots: list[Ack | None]
    future: "Future[list[Ack]] | None"

    def acks(self, results: list[Ack]) -> list[Ack]:
        """Every request's Ack in request order, given the future's results."""
        engine = iter(results)
        return [next(engine) if slot is None else slot for slot in self.slots]


def submit(core: Core, principal: Principal, requests: Iterable[Any], find: Find) -> Batch:
    """Queue the commands of a batch of `OrderRequest`s (each a oneof of the request messages)."""
    commands: list[dict[str, Any]] = []
    slots: list[Ack | None] = []
    for req in requests:
        kind = req.WhichOneof("request")
        try:
            commands.append(command(principal, kind, getattr(req, kind) if kind else None, find))
            slots.append(None)
        except Refused as refused:
            slots.append(Ack("", "", "rejected", refused))
    return Batch(slots, core.submit(commands, acks) if commands else None)
