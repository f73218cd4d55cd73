"""Protobuf messages <-> the daemon's records and commands. Enum tables live here, once."""

from typing import Any

from tradsys.engine import EVENT_KINDS
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import orders_pb2 as pb

SIDES = {common.SIDE_BUY: "buy", common.SIDE_SELL: "sell"}
TYPES = {
    common.ORDER_TYPE_LIMIT: "limit", common.ORDER_TYPE_MARKET: "market",
    common.ORDER_TYPE_STOP: "stop", common.ORDER_TYPE_STOP_LIMIT: "stop_limit",
}
TIFS = {
    common.TIME_IN_FORCE_GTC: "GTC", common.TIME_IN_FORCE_IOC: "IOC", common.TIME_IN_FORCE_FOK: "FOK",
    common.TIME_IN_FORCE_DAY: "DAY", common.TIME_IN_FORCE_GTD: "GTD",
}
STATUSES = {
    "new": common.ORDER_STATUS_NEW, "partially_filled": common.ORDER_STATUS_PARTIALLY_FILLED,
    "filled": common.ORDER_STATUS_FILLED, "cancelled": common.ORDER_STATUS_CANCELLED,
    "rejected": common.ORDER_STATUS_REJECTED, "expired": common.ORDER_STATUS_EXPIRED,
}
STATUS_NAMES = {v: k for k, v in STATUSES.items()}
SIDE_CODES = {v: k for k, v in SIDES.items()}
TYPE_CODES = {v: k for k, v in TYPES.items()}
TIF_CODES = {v: k for k, v in TIFS.items()}
KINDS = {name: pb.OrderEvent.Kind.Value(f"KIND_{name.upper()}") for name in EVENT_KINDS.values()}
"""The engine's event names (`EVENT_KINDS`) as OrderEvent.Kind values; a name without one fails at import."""


class BadRequest(ValueError):
    """A request the daemon cannot turn into a command (INVALID_ARGUMENT)."""


def place_command(req: pb.PlaceOrderRequest, account: str) -> dict[str, Any]:
    """The journal command for a PlaceOrderRequest; value checks are the engine's."""
    if req.side not in SIDES:
        raise BadRequest("side must be BUY or SELL")
    cmd: dict[str, Any] = {
        "op": "new",
        "account": account,
        "symbol": req.symbol,
        "side": SIDES[req.side],
        "type": TYPES.get(req.type, "limit") if req.type else "limit",
        "tif": TIFS.get(req.tif, "GTC") if req.tif else "GTC",
        "qty": req.qty,
    }
    if req.type and req.type not in TYPES:
        raise BadRequest(f"unknown order type {req.type}")
    if req.tif and req.tif not in TIFS:
        raise BadRequest(f"unknown time in force {req.tif}")
    if not req.symbol:
        raise BadRequest("symbol is required")
    if req.price:
        cmd["price"] = req.price
    if req.stop_price:
        cmd["stop_price"] = req.stop_price
    if req.client_id:
        cmd["client_id"] = req.client_id
    if req.post_only:
        cmd["post_only"] = True
    if req.reduce_only:
        cmd["reduce_only"] = True
    if req.expire_ns:
        cmd["expire_ts"] = req.expire_ns
    return cmd


def order_msg(r: dict[str, Any]) -> pb.Order:
    return pb.Order(
        order_id=r["id"], client_id=r.get("client_id") or "", account=r.get("account") or "",
        symbol=r.get("symbol") or "", side=SIDE_CODES.get(r.get("side"), 0), type=TYPE_CODES.get(r.get("type"), 0),
        tif=TIF_CODES.get(r.get("tif"), 0), price=r.get("price") or "", stop_price=r.get("stop_price") or "",
        qty=r.get("qty") or "", filled_qty=r.get("filled_qty") or "", open_qty=r.get("open_qty") or "",
        avg_fill_price=r.get("avg_price") or "", status=STATUSES.get(r.get("status"), 0),
        post_only=bool(r.get("post_only")), reduce_only=bool(r.get("reduce_only")),
        expire_ns=r.get("expire_ns") or 0, created_ns=r.get("created_ns") or 0, updated_ns=r.get("updated_ns") or 0,
        reject_reason=r.get("reason") or "", triggered=bool(r.get("triggered")),
    )


def fill_msg(r: dict[str, Any]) -> pb.Fill:
    return pb.Fill(
        fill_id=f"{r['trade_id']}-{r['liquidity'][0]}", order_id=r["order_id"], account=r["account"],
        symbol=r["symbol"], side=SIDE_CODES[r["side"]], price=r["price"], qty=r["qty"], fee=r["fee"],
        fee_currency=r["fee_currency"],
        liquidity=common.LIQUIDITY_MAKER if r["liquidity"] == "maker" else common.LIQUIDITY_TAKER,
        ts_ns=r["ts"], taker_order_id=r.get("taker_order_id") or "", maker_order_id=r.get("maker_order_id") or "",
    )


def entry_response(kind: str, answer: dict[str, Any]) -> Any:
    """The orders.proto response to an order-entry request, from its answer (`entry.answer`)."""
    if kind == "place":
        return pb.PlaceOrderResponse(order=order_msg(answer["order"]), fills=[fill_msg(f) for f in answer["fills"]])
    if kind == "cancel_all":
        return pb.CancelAllResponse(order_ids=answer["order_ids"])
    response = pb.CancelOrderResponse if kind == "cancel" else pb.AmendOrderResponse
    return response(order=order_msg(answer["order"]))


def position_msg(r: dict[str, Any]) -> pb.Position:
    return pb.Position(
        account=r["account"], symbol=r["symbol"], qty=r["qty"], avg_price=r["avg_price"] or "",
        realized_pnl=r["realized_pnl"], unrealized_pnl=r["unrealized_pnl"], fees=r["fees"],
        mark_price=r["mark_price"] or "",
    )


def order_event_msg(r: dict[str, Any]) -> pb.OrderEvent:
    msg = pb.OrderEvent(kind=KINDS[r["kind"]], order=order_msg(r["order"]), reason=r.get("reason") or "",
                        ts_ns=r["ts"], seq=r["seq"])
    if r.get("fill") is not None:
        msg.fill.CopyFrom(fill_msg(r["fill"]))
    return msg


def trade_msg(r: dict[str, Any]) -> md.Trade:
    return md.Trade(trade_id=str(r["trade_id"]), symbol=r["symbol"], price=r["price"], qty=r["qty"],
                    taker_side=SIDE_CODES[r["taker_side"]], ts_ns=r["ts"])


def bar_msg(r: dict[str, Any]) -> md.Bar:
    return md.Bar(symbol=r["symbol"], interval=r["interval"], start_ns=r["start_ns"], open=r["open"], high=r["high"],
                  low=r["low"], close=r["close"], volume=r["volume"], trade_count=r["trades"], closed=r["closed"])


def levels(items: list[tuple[str, str, int]]) -> list[md.BookLevel]:
    return [md.BookLevel(price=p, qty=q, order_count=n) for p, q, n in items]
