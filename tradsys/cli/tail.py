"""`tradsys tail [orders|trades|alerts|all]`: live event lines until Ctrl-C."""

import queue
import threading
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import grpc
import typer

from tradsys.cli.alerts import alert_doc, alert_line
from tradsys.cli.client import EXIT_UNREACHABLE, Client, CliError, target
from tradsys.cli.order import STATUS_STYLE, AccountOption, SymbolOption
from tradsys.cli.output import (
    JsonOption, coloured, console, emit_line, err_console, handle_errors, side_style, to_dict, when,
)
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


RETRY_SECONDS = (0.25, 2.0)
"""First and longest wait between attempts to reach the daemon again."""


def _follow(open_stream: Callable[[], Any], kind: str, out: "queue.Queue[tuple[str, Any]]", client: Client,
            stop: threading.Event, open_streams: set[Any], reconnect: bool) -> None:
    """Put the stream's items on `out`; when the daemon goes away (it stopped, or the connection
    broke), report it and, with `reconnect`, open the stream again once the daemon is back."""
    while not stop.is_set():
        stream = open_stream()
        open_streams.add(stream)
        try:
            for item in stream:
                out.put((kind, item))
            lost: grpc.RpcError | None = None
        except grpc.RpcError as exc:
            if stop.is_set():
                return
            if exc.code() != grpc.StatusCode.UNAVAILABLE or not reconnect:
                out.put(("error", exc))
                return
            lost = exc
        finally:
            open_streams.discard(stream)
        if not reconnect:
            out.put(("end", None))
            return
        out.put(("lost", lost))
        delay = RETRY_SECONDS[0]
        while not stop.is_set():
            try:
                grpc.channel_ready_future(client.channel).result(timeout=delay)
                break
            except grpc.FutureTimeoutError:
                delay = min(delay * 2, RETRY_SECONDS[1])
        out.put(("back", None))


@handle_errors
def tail(
    topic: Annotated[Topic, typer.Argument(help="orders, trades, alerts, or all.")] = Topic.all,
    symbol: SymbolOption = None,
    account: AccountOption = None,
    as_json: Annotated[bool, JsonOption] = False,
    reconnect: Annotated[bool, typer.Option(
        "--reconnect/--no-reconnect",
        help="When the daemon stops or the connection breaks, wait for it and go on (events in between "
             "are missed); --no-reconnect ends with exit 3 instead.")] = True,
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
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    open_streams: set[Any] = set()
    for open_stream, kind in streams:
        threading.Thread(target=_follow, args=(open_stream, kind, events, client, stop, open_streams, reconnect),
                         daemon=True).start()
    render: dict[str, Callable[[dict[str, Any]], str]] = {"order": order_line, "trade": trade_line, "alert": alert_line}
    live, away = len(streams), 0
    try:
        while live:
            try:
                kind, item = events.get(timeout=0.25)
            except queue.Empty:
                continue
            if kind == "error":
                raise client.error(item)
            if kind == "end":
                live -= 1
            elif kind == "lost":
                away += 1
                if away == 1:
                    why = "closed the stream" if item is None else f"went away ({item.details()})"
                    err_console.print(f"the daemon on {client.host}:{client.port} {why}; reconnecting "
                                      f"(events until then are missed)", soft_wrap=True)
            elif kind == "back":
                away -= 1
                if away == 0:
                    err_console.print(f"reconnected to {client.host}:{client.port}", soft_wrap=True)
            else:
                doc = alert_doc(item) if kind == "alert" else to_dict(item)
                if as_json:
                    emit_line({"type": kind, **doc})
                else:
                    console.print(render[kind](doc), soft_wrap=True)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a tail ends: exit 0
    finally:
        stop.set()
        for stream in list(open_streams):
            stream.cancel()
    raise CliError(EXIT_UNREACHABLE, f"the daemon on {client.host}:{client.port} closed the stream")
