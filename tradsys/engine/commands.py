"""The command format: one JSON object per command, decimal strings for prices and quantities.

`tradsys replay` reads it, the daemon's journal writes it, so anything the venue did can be
reproduced by running its journal through a fresh venue. Values are checked here, at the edge,
and turned into integer ticks and lots; a value the venue refuses becomes a `rejected` event,
while a line that is not a command at all raises `BadCommand`.
"""

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from decimal import Decimal
from typing import Any, Mapping

from tradsys.engine.enums import OrderType, Side, TimeInForce
from tradsys.engine.errors import Rejected
from tradsys.engine.events import EVENT_KINDS, Event, OrderFilled, OrderRejected
from tradsys.engine.order import Order, new_order
from tradsys.engine.venue import Venue

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ORDER_OPS = ("new", "cancel", "amend")
ADMIN_OPS = ("cancel_all", "halt", "resume", "kill", "limit", "deposit", "advance")


class BadCommand(ValueError):
    """The input is not a command: wrong shape, unknown op, missing id.

    Admin commands with bad arguments raise `Rejected` instead; either way nothing has changed.
    """


def fmt(value: Decimal) -> str:
    """Plain decimal text without trailing zeros or exponent: "100.01", "0.5", "100"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def parse_ts(value: object) -> int:
    """Engine time: integer nanoseconds since the epoch, or an ISO-8601 string (UTC if no zone)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise BadCommand("ts must not be negative")
        return value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadCommand(f"ts {value!r} is neither nanoseconds nor ISO-8601") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return (when - EPOCH) // timedelta(microseconds=1) * 1000
    raise BadCommand(f"ts must be an integer of nanoseconds or an ISO-8601 string, got {type(value).__name__}")


def _text(cmd: Mapping[str, Any], key: str) -> str:
    value = _optional_text(cmd, key)
    if value is None:
        raise BadCommand(f"missing {key!r}")
    return value


def _optional_text(cmd: Mapping[str, Any], key: str) -> str | None:
    value = cmd.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadCommand(f"{key!r} must be a non-empty string")
    return value


def _flag(cmd: Mapping[str, Any], key: str) -> bool:
    value = cmd.get(key, False)
    if not isinstance(value, bool):
        raise BadCommand(f"{key!r} must be true or false")
    return value


def _lookup(enum: type[StrEnum], aliases: Callable[[str], str]) -> dict[str, Any]:
    return {aliases(m.value): m for m in enum}


SIDES = _lookup(Side, str.lower)
TYPES = _lookup(OrderType, str.lower)
TIFS = _lookup(TimeInForce, str.upper)


def _choice(table: dict[str, Any], cmd: Mapping[str, Any], key: str, default: Any) -> Any:
    """An enum member from its text, case-insensitively; a dict lookup, as this runs per order."""
    value = cmd.get(key)
    if value is None:
        return default
    member = table.get(value) if isinstance(value, str) else None
    if member is None and isinstance(value, str):
        member = table.get(value.lower()) or table.get(value.upper())
    if member is None:
        choices = ", ".join(m.value for m in table.values())
        raise Rejected(f"invalid_{key}", f"{key} {value!r} is not one of {choices}")
    return member


def build_order(venue: Venue, cmd: Mapping[str, Any]) -> Order:
    """Turn a `new` command into an Order; raises Rejected for values the venue cannot take."""
    order_id = _text(cmd, "id")
    account = _text(cmd, "account")
    symbol = _text(cmd, "symbol")
    client_id = _optional_text(cmd, "client_id")
    post_only = _flag(cmd, "post_only")
    reduce_only = _flag(cmd, "reduce_only")
    inst = venue.instrument(symbol)
    side = _choice(SIDES, cmd, "side", None)
    if side is None:
        raise Rejected("invalid_side", "side must be buy or sell")
    otype = _choice(TYPES, cmd, "type", OrderType.LIMIT)
    tif = _choice(TIFS, cmd, "tif", TimeInForce.GTC)
    price = cmd.get("price")
    stop = cmd.get("stop_price")
    expire = cmd.get("expire_ts")
    return new_order(
        order_id,
        account,
        symbol,
        side,
        otype,
        inst.qty_to_lots(cmd.get("qty")),
        None if price is None else inst.price_to_ticks(price),
        None if stop is None else inst.price_to_ticks(stop),
        tif,
        post_only,
        reduce_only,
        client_id,
        None if expire is None else parse_ts(expire),
        parse_ts(cmd.get("ts")),
    )


def apply(venue: Venue, cmd: object) -> list[Event]:
    """Run one decoded command through the venue and return its events."""
    if not isinstance(cmd, dict):
        raise BadCommand("a command must be a JSON object")
    op = cmd.get("op")
    if op == "new":
        try:
            order = build_order(venue, cmd)
        except Rejected as rej:
            events = venue.advance(parse_ts(cmd.get("ts")))
            events.append(OrderRejected(venue.now, str(cmd.get("id")), str(cmd.get("account", "")), rej.reason, rej.message))
            return events
        return venue.place(order)
    if op == "cancel" or op == "amend":
        order_id = _text(cmd, "id")
        ts = parse_ts(cmd.get("ts"))
        account = _optional_text(cmd, "account")
        if op == "cancel":
            return venue.cancel(order_id, ts, account)
        found = venue.orders.get(order_id)
        if found is None:
            return venue.amend(order_id, ts=ts, account=account)
        try:
            inst = venue.instruments[found.symbol]
            price, qty, stop = cmd.get("price"), cmd.get("qty"), cmd.get("stop_price")
            if price is None and qty is None and stop is None:
                raise Rejected("invalid_amend", "amend needs price, qty or stop_price")
            return venue.amend(
                order_id,
                price=None if price is None else inst.price_to_ticks(price),
                qty=None if qty is None else inst.qty_to_lots(qty),
                stop_price=None if stop is None else inst.price_to_ticks(stop),
                ts=ts,
                account=account,
            )
        except Rejected as rej:
            return [OrderRejected(venue.now, order_id, found.account, rej.reason, rej.message, op="amend")]
    if op in ADMIN_OPS:
        return _admin(venue, op, cmd)
    raise BadCommand(f"unknown op {op!r}; expected one of {', '.join(ORDER_OPS + ADMIN_OPS)}")


def _admin(venue: Venue, op: str, cmd: Mapping[str, Any]) -> list[Event]:
    ts = parse_ts(cmd.get("ts"))
    if op == "advance":
        return venue.advance(ts)
    if op == "cancel_all":
        events = venue.cancel_all(ts, _optional_text(cmd, "account"), _optional_text(cmd, "symbol"))
    elif op == "kill":
        events = venue.set_kill_switch(_flag(cmd, "on"), ts, cmd.get("reason") or "manual")
    else:
        if op == "halt":
            venue.halt(_text(cmd, "symbol"), cmd.get("reason") or "manual")
        elif op == "resume":
            venue.resume(_text(cmd, "symbol"))
        elif op == "limit":
            venue.set_limit(_text(cmd, "key"), cmd.get("value"), _optional_text(cmd, "account"), _optional_text(cmd, "symbol"))
        else:
            venue.deposit(_text(cmd, "account"), _text(cmd, "currency"), cmd.get("amount"))
        events = venue.advance(ts)
    return events


def load_limits(venue: Venue, spec: Mapping[str, Any]) -> None:
    """Limits from a mapping (a parsed TOML/JSON file): top-level keys are global, then
    `[symbols."BTC-USD"]`, `[accounts.a1]` and `[accounts.a1.symbols."BTC-USD"]` tables."""
    for key, value in spec.items():
        if key == "symbols":
            for symbol, values in value.items():
                for k, v in values.items():
                    venue.set_limit(k, v, symbol=symbol)
        elif key == "accounts":
            for account, values in value.items():
                for k, v in values.items():
                    if k == "symbols":
                        for symbol, inner in v.items():
                            for k2, v2 in inner.items():
                                venue.set_limit(k2, v2, account=account, symbol=symbol)
                    else:
                        venue.set_limit(k, v, account=account)
        else:
            venue.set_limit(key, value)


def event_dict(venue: Venue, event: Event) -> dict[str, Any]:
    """An event in the command format's output vocabulary (`EVENT_KINDS`)."""
    kind = EVENT_KINDS.get(type(event))
    if kind is None:
        raise TypeError(f"not an event: {event!r}")
    if isinstance(event, OrderFilled):
        inst = venue.instruments[event.symbol]
        return {
            "event": kind,
            "symbol": event.symbol,
            "taker": event.taker.id,
            "maker": event.maker.id,
            "price": fmt(inst.price(event.price)),
            "qty": fmt(inst.qty(event.qty)),
        }
    if isinstance(event, OrderRejected):
        out = {"event": kind, "id": event.order_id, "reason": event.reason}
        if event.op != "new":
            out["op"] = event.op
        return out
    return {"event": kind, "id": event.order.id}


def resting_dicts(venue: Venue) -> list[dict[str, Any]]:
    """Orders left in the books, per symbol, bids then asks, best price first."""
    out = []
    for symbol, book in venue.books.items():
        inst = venue.instruments[symbol]
        for order in book.resting():
            assert order.price is not None, "only priced orders rest"
            out.append({
                "event": "resting",
                "id": order.id,
                "symbol": symbol,
                "side": order.side.value,
                "price": fmt(inst.price(order.price)),
                "qty": fmt(inst.qty(order.open_qty)),
            })
    return out
