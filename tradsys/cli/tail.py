"""`tradsys tail [orders|trades|alerts|all]`: live event lines until Ctrl-C."""

from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer

from tradsys.cli.alerts import alert_doc, alert_line
from tradsys.cli.client import Client, target
from tradsys.cli.follow import ReconnectOption, follow
from tradsys.cli.order import STATUS_STYLE, AccountOption, SymbolOption
from tradsys.cli.output import JsonOption, coloured, console, emit_line, handle_errors, side_style, to_dict, when
from tradsys.proto import alerts_pb2 as al
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import orders_pb2 as pb


class Topic(str, Enum):
    orders = "orders"
    trades = "trades"
    alerts = "alerts"
    all = "all"


def order_line(event: dict[str, Any]) -> str:
    order = event["order"] or {}
    kind = event["kind"] or ""
    parts = [when(event["ts_ns"]), coloured(f"{kind:<9}", STATUS_STYLE.get(order.get("status") or "", "")),
             f"#{order.get('order_id', '')}", order.get("account", ""), order.get("symbol", ""),
             coloured(order.get("side") or "", side_style(order.get("side")))]
    fill = event["fill"]
    if fill is not None:
        parts.append(f"{fill['qty']} @ {fill['price']} ({fill['liquidity']}, fee {fill['fee']})")
    elif order.get("qty"):
        parts.append(f"{order['qty']} @ {order.get('price') or 'mkt'}")
    parts.append(f"filled {order.get('filled_qty') or '0'}/{order.get('qty') or '?'}")
    if event["reason"]:
        parts.append(f"({event['reason']})")
    return " ".join(p for p in parts if p)


def trade_line(trade: dict[str, Any]) -> str:
    style = side_style(trade["taker_side"])
    return (f"{when(trade['ts_ns'])} {'trade':<9} {trade['symbol']} {coloured(trade['taker_side'] or '', style)} "
            f"{trade['qty']} @ {coloured(trade['price'], style)}")


@handle_errors
def tail(
    topic: Annotated[Topic, typer.Argument(help="orders, trades, alerts, or all.")] = Topic.all,
    symbol: SymbolOption = None,
    account: AccountOption = None,
    as_json: Annotated[bool, JsonOption] = False,
    reconnect: ReconnectOption = True,
) -> None:
    """Print live events as they happen, one line each, until Ctrl-C (JSON lines with --json).

    Example: tradsys tail trades --symbol BTC-USD --json
    """
    client = Client()
    symbol = symbol.upper() if symbol else None
    streams: list[tuple[Callable[[], Any], str]] = []
    if topic in (Topic.orders, Topic.all):
        request = pb.StreamOrderEventsRequest(account=target.own_account(account) or "", symbol=symbol or "")
        streams.append((lambda: client.stream(client.orders.StreamOrderEvents, request), "order"))
    if topic in (Topic.trades, Topic.all):
        if symbol is not None:
            symbols = [symbol]
        else:
            listed = client.call(client.market.ListInstruments, md.ListInstrumentsRequest())
            symbols = [i.symbol for i in listed.instruments]
        for name in symbols:
            trades = md.StreamTradesRequest(symbol=name)
            streams.append((lambda trades=trades: client.stream(client.market.StreamTrades, trades), "trade"))
    if topic in (Topic.alerts, Topic.all):
        streams.append((lambda: client.stream(client.alerts.StreamAlerts, al.StreamAlertsRequest()), "alert"))
    render: dict[str, Callable[[dict[str, Any]], str]] = {"order": order_line, "trade": trade_line, "alert": alert_line}

    def emit(kind: str, item: Any) -> None:
        doc = alert_doc(item) if kind == "alert" else to_dict(item)
        if as_json:
            emit_line({"type": kind, **doc})
        else:
            console.print(render[kind](doc), soft_wrap=True)

    follow(client, streams, emit, reconnect)
