"""Engine objects as plain records with decimal strings: what the store, gRPC and WebSocket carry.

Built on the engine thread, so readers on other threads see a consistent, immutable copy.
"""

from decimal import Decimal
from typing import Any

from tradsys.engine import Order, OrderFilled, Venue
from tradsys.engine.commands import fmt
from tradsys.engine.instrument import from_cash


def order_record(venue: Venue, order: Order, reason: str = "") -> dict[str, Any]:
    inst = venue.instruments[order.symbol]
    avg = None
    if order.filled_qty:
        avg = fmt(Decimal(order.filled_cost) / order.filled_qty * inst.tick_size)
    return {
        "id": order.id,
        "client_id": order.client_id,
        "account": order.account,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "tif": order.tif.value,
        "price": None if order.price is None else fmt(inst.price(order.price)),
        "stop_price": None if order.stop_price is None else fmt(inst.price(order.stop_price)),
        "qty": fmt(inst.qty(order.qty)),
        "filled_qty": fmt(inst.qty(order.filled_qty)),
        "open_qty": fmt(inst.qty(order.open_qty)),
        "avg_price": avg,
        "status": order.status.value,
        "post_only": order.post_only,
        "reduce_only": order.reduce_only,
        "triggered": order.triggered,
        "reason": reason,
        "expire_ns": order.expire_ns,
        "created_ns": order.created_ns,
        "updated_ns": order.updated_ns,
    }


def fill_records(venue: Venue, fill: OrderFilled) -> tuple[dict[str, Any], dict[str, Any]]:
    """The taker's and the maker's side of one match."""
    inst = venue.instruments[fill.symbol]
    price, qty = fmt(inst.price(fill.price)), fmt(inst.qty(fill.qty))

    def side(order: Order, fee: int, liquidity: str) -> dict[str, Any]:
        return {
            "trade_id": fill.trade_id,
            "order_id": order.id,
            "account": order.account,
            "symbol": fill.symbol,
            "side": order.side.value,
            "price": price,
            "qty": qty,
            "fee": fmt(from_cash(fee)),
            "fee_currency": inst.quote,
            "liquidity": liquidity,
            "taker_order_id": fill.taker.id,
            "maker_order_id": fill.maker.id,
            "ts": fill.ts,
        }

    return side(fill.taker, fill.taker_fee, "taker"), side(fill.maker, fill.maker_fee, "maker")


def trade_record(venue: Venue, fill: OrderFilled) -> dict[str, Any]:
    """The public view of a match: no accounts or order ids."""
    inst = venue.instruments[fill.symbol]
    return {
        "trade_id": fill.trade_id,
        "symbol": fill.symbol,
        "price": fmt(inst.price(fill.price)),
        "qty": fmt(inst.qty(fill.qty)),
        "taker_side": fill.taker.side.value,
        "ts": fill.ts,
    }


def position_records(venue: Venue, account: str | None = None) -> list[dict[str, Any]]:
    out = []
    for acct_id, acct in sorted(venue.accounts.items()):
        if account is not None and acct_id != account:
            continue
        for symbol, pos in sorted(acct.positions.items()):
            if pos.qty == 0 and pos.realized == 0 and pos.fees == 0:
                continue
            inst = venue.instruments[symbol]
            mark = venue.reference_price(symbol)
            out.append({
                "account": acct_id,
                "symbol": symbol,
                "qty": fmt(inst.qty(pos.qty)),
                "avg_price": fmt(Decimal(pos.cost) / pos.qty * inst.tick_size) if pos.qty else None,
                "realized_pnl": fmt(from_cash(pos.realized * inst.cash_mult)),
                "unrealized_pnl": fmt(from_cash(pos.unrealized(mark) * inst.cash_mult)) if mark is not None else "0",
                "fees": fmt(from_cash(pos.fees)),
                "mark_price": None if mark is None else fmt(inst.price(mark)),
            })
    return out
