"""`tradsys order place|cancel|amend|list|show`."""

import time
from enum import Enum
from typing import Annotated, Any

import typer
from rich.table import Table

from tradsys.cli.client import EXIT_FAILED, EXIT_USAGE, Client, CliError, target
from tradsys.cli.complete import symbols
from tradsys.cli.output import (
    JsonOption,
    coloured,
    console,
    decimal_text,
    emit_json,
    handle_errors,
    rounded,
    side_style,
    table,
    to_dict,
    when,
)
from tradsys.cli.prices import is_relative, resolve, steps
from tradsys.durations import DurationError, parse_seconds
from tradsys.proto import common_pb2 as common
from tradsys.proto import orders_pb2 as pb

order_app = typer.Typer(help="Place, cancel, amend and inspect orders.", no_args_is_help=True)


class Side(str, Enum):
    buy = "buy"
    sell = "sell"


class OrderType(str, Enum):
    limit = "limit"
    market = "market"
    stop = "stop"
    stop_limit = "stop-limit"


class Tif(str, Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    DAY = "DAY"


class Status(str, Enum):
    open = "open"
    new = "new"
    partially_filled = "partially_filled"
    filled = "filled"
    cancelled = "cancelled"
    rejected = "rejected"
    expired = "expired"


SIDES = {Side.buy: common.SIDE_BUY, Side.sell: common.SIDE_SELL}
TYPES = {
    OrderType.limit: common.ORDER_TYPE_LIMIT, OrderType.market: common.ORDER_TYPE_MARKET,
    OrderType.stop: common.ORDER_TYPE_STOP, OrderType.stop_limit: common.ORDER_TYPE_STOP_LIMIT,
}
TIFS = {
    Tif.GTC: common.TIME_IN_FORCE_GTC, Tif.IOC: common.TIME_IN_FORCE_IOC, Tif.FOK: common.TIME_IN_FORCE_FOK,
    Tif.DAY: common.TIME_IN_FORCE_DAY,
}
STATUSES = {
    Status.open: [common.ORDER_STATUS_NEW, common.ORDER_STATUS_PARTIALLY_FILLED],
    Status.new: [common.ORDER_STATUS_NEW],
    Status.partially_filled: [common.ORDER_STATUS_PARTIALLY_FILLED],
    Status.filled: [common.ORDER_STATUS_FILLED],
    Status.cancelled: [common.ORDER_STATUS_CANCELLED],
    Status.rejected: [common.ORDER_STATUS_REJECTED],
    Status.expired: [common.ORDER_STATUS_EXPIRED],
}
STATUS_STYLE = {"new": "cyan", "partially_filled": "yellow", "filled": "green", "cancelled": "dim",
                "rejected": "red", "expired": "dim"}

AccountOption = Annotated[
    str | None,
    typer.Option("--account", "-a", help="Account (default: $TRADSYS_ACCOUNT, the token's only account, or 'default'; '*' = all)."),
]
SymbolOption = Annotated[str | None, typer.Option("--symbol", "-s", help="Only this symbol, e.g. BTC-USD.",
                                                   autocompletion=symbols)]
OrderRef = Annotated[str, typer.Argument(help="Venue order id, or your --client-id for it (in --account).")]
PriceHelp = "Limit price: a number, or relative to the book: bid-1%, ask+50, mid."


def order_table(client: Client, orders: list[dict[str, Any]]) -> Table:
    """Orders as a table; average fill prices to the tick (asking for the ticks only when there is one)."""
    precision = steps(client) if any(o["avg_fill_price"] for o in orders) else {}
    return table(None, ORDER_COLUMNS, order_rows(orders, precision), ORDER_RIGHT, ORDER_OPTIONAL)


def order_rows(orders: list[dict[str, Any]], precision: dict[str, tuple[str, str]]) -> list[list[str]]:
    return [
        [o["order_id"], o["client_id"], when(o["created_ns"]), o["account"], o["symbol"],
         coloured(o["side"] or "", side_style(o["side"])), (o["type"] or "").replace("_", "-"), (o["tif"] or "").upper(),
         o["price"] or "mkt", o["qty"], o["filled_qty"], rounded(o["avg_fill_price"], precision.get(o["symbol"], ("",))[0]),
         coloured(o["status"] or "", STATUS_STYLE.get(o["status"] or "", ""))]
        for o in orders
    ]


ORDER_COLUMNS = ["id", "client id", "created", "account", "symbol", "side", "type", "tif", "price", "qty", "filled",
                 "avg", "status"]
ORDER_RIGHT = ["price", "qty", "filled", "avg"]
ORDER_OPTIONAL = ["tif", "created", "type", "avg", "account"]
"""Left out, in this order, when a terminal is too narrow for every column."""
FILL_COLUMNS = ["fill", "time", "order", "account", "symbol", "side", "price", "qty", "fee", "liq"]
FILL_RIGHT = ["price", "qty", "fee"]
FILL_OPTIONAL = ["account", "liq", "order", "fee"]


def fill_rows(fills: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [f["fill_id"], when(f["ts_ns"]), f["order_id"], f["account"], f["symbol"],
         coloured(f["side"] or "", side_style(f["side"])), f["price"], f["qty"], f"{f['fee']} {f['fee_currency']}",
         f["liquidity"] or ""]
        for f in fills
    ]


def print_order(client: Client, order: dict[str, Any], fills: list[dict[str, Any]], headline: str) -> None:
    status = order["status"] or ""
    console.print(f"{headline} {order['order_id']}: {coloured(status, STATUS_STYLE.get(status, ''))}"
                  + (f" ({order['reject_reason']})" if order["reject_reason"] else ""))
    console.print(order_table(client, [order]))
    if fills:
        console.print(table("fills", FILL_COLUMNS, fill_rows(fills), FILL_RIGHT, FILL_OPTIONAL))


OPEN = [common.ORDER_STATUS_NEW, common.ORDER_STATUS_PARTIALLY_FILLED]
SEARCH_PAGES = 20
"""How many pages of 1,000 orders a client-id lookup reads per pass (open orders, then all)."""


def by_client_id(client: Client, client_id: str, account: str | None) -> dict[str, Any]:
    """The newest order of `account` (None: every account the token reads) with this client id,
    looking among open orders first; a usage error (exit 2) when there is none."""
    for statuses in (OPEN, []):
        token = ""
        for _ in range(SEARCH_PAGES):
            reply = client.call(client.orders.ListOrders, pb.ListOrdersRequest(
                account=account or "", statuses=statuses, page_size=1000, page_token=token))
            found = next((o for o in reply.orders if o.client_id == client_id), None)
            if found is not None:
                return to_dict(found)
            token = reply.next_page_token
            if not token:
                break
    where = f" in account {account}" if account else ""
    raise CliError(EXIT_USAGE, f"error: no order with the id or client id {client_id!r}{where}")


def by_ref(client: Client, ref: str, account: str | None, rpc: str, request: Any) -> Any:
    """Call `rpc` with `request` for the order `ref` names: its venue id, else its client id in `account`."""
    try:
        return client.call(getattr(client.orders, rpc), request)
    except CliError as exc:
        if exc.code != EXIT_USAGE or not (exc.message.startswith("error: no order") or exc.reason == "unknown_order"):
            raise
    request.order_id = by_client_id(client, ref, account)["order_id"]
    return client.call(getattr(client.orders, rpc), request)


@order_app.command()
@handle_errors
def place(
    symbol: Annotated[str, typer.Argument(help="Instrument, e.g. BTC-USD (see `tradsys market list`).",
                                          autocompletion=symbols)],
    side: Annotated[Side, typer.Argument(help="buy or sell.", case_sensitive=False)],
    qty: Annotated[str, typer.Argument(help="Quantity as a decimal, e.g. 0.5.")],
    price: Annotated[str | None, typer.Option("--price", "-p", help=PriceHelp + " Limit and stop-limit orders.")] = None,
    order_type: Annotated[OrderType | None, typer.Option("--type", "-t", help="Default: limit with --price, else market.")] = None,
    stop_price: Annotated[str | None, typer.Option("--stop-price", help="Trigger price (stop and stop-limit).")] = None,
    tif: Annotated[Tif, typer.Option("--tif", help="Time in force.", case_sensitive=False)] = Tif.GTC,
    post_only: Annotated[bool, typer.Option("--post-only", help="Reject rather than take liquidity.")] = False,
    reduce_only: Annotated[bool, typer.Option("--reduce-only", help="Only ever reduce the position.")] = False,
    account: AccountOption = None,
    client_id: Annotated[str | None, typer.Option("--client-id", help="Your own id for the order (unique).")] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Place an order; exit 1 with the reason if the venue rejects it.

    Example: tradsys order place BTC-USD buy 0.01 --price bid-1% --client-id my-bid-1
    """
    kind = order_type or (OrderType.limit if price is not None else OrderType.market)
    if kind in (OrderType.limit, OrderType.stop_limit) and price is None:
        raise CliError(EXIT_USAGE, f"usage: --price is required for a {kind.value} order")
    if kind in (OrderType.stop, OrderType.stop_limit) and stop_price is None:
        raise CliError(EXIT_USAGE, f"usage: --stop-price is required for a {kind.value} order")
    if kind in (OrderType.market, OrderType.stop) and price is not None:
        raise CliError(EXIT_USAGE, f"usage: a {kind.value} order takes no --price")
    if kind in (OrderType.market, OrderType.limit) and stop_price is not None:
        raise CliError(EXIT_USAGE, "usage: --stop-price is for stop and stop-limit orders only")
    if kind == OrderType.market and tif == Tif.GTC:
        tif = Tif.IOC
    client = Client()
    symbol = symbol.upper()
    if price is not None and is_relative(price):
        price = resolve(client, symbol, price, buying=side == Side.buy)
    request = pb.PlaceOrderRequest(
        client_id=client_id or "", account=target.own_account(account) or "", symbol=symbol, side=SIDES[side],
        type=TYPES[kind], tif=TIFS[tif], price=decimal_text(price, "--price"),
        stop_price=decimal_text(stop_price, "--stop-price"), qty=decimal_text(qty, "QTY"),
        post_only=post_only, reduce_only=reduce_only,
    )
    reply = client.call(client.orders.PlaceOrder, request)
    order, fills = to_dict(reply.order), [to_dict(f) for f in reply.fills]
    if as_json:
        emit_json({"order": order, "fills": fills})
    else:
        print_order(client, order, fills, "order")
    if order["status"] == "rejected":
        raise typer.Exit(EXIT_FAILED)


@order_app.command()
@handle_errors
def cancel(
    order_id: Annotated[str | None, typer.Argument(
        help="Venue order id (from `order list`), or your --client-id for it (in --account).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Cancel every open order of the account.")] = False,
    symbol: SymbolOption = None,
    account: AccountOption = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Cancel one order, or all open orders of an account (optionally of one symbol).

    Example: tradsys order cancel my-bid-1      |      tradsys order cancel --all --symbol BTC-USD
    """
    if (order_id is None) == (not all_):
        raise CliError(EXIT_USAGE, "usage: give an order ID or --all (not both)")
    client = Client()
    if order_id is not None:
        if symbol is not None:
            raise CliError(EXIT_USAGE, "usage: --symbol goes with --all")
        reply = by_ref(client, order_id, target.own_account(account), "CancelOrder",
                       pb.CancelOrderRequest(order_id=order_id))
        order = to_dict(reply.order)
        if as_json:
            emit_json({"order": order})
        else:
            print_order(client, order, [], "cancelled")
        return
    request = pb.CancelAllRequest(account=target.own_account(account) or "", symbol=(symbol or "").upper())
    ids = list(client.call(client.orders.CancelAll, request).order_ids)
    if as_json:
        emit_json({"cancelled": ids})
    else:
        console.print(f"cancelled {len(ids)} order(s)" + (f": {', '.join(ids)}" if ids else ""))


@order_app.command()
@handle_errors
def amend(
    order_id: OrderRef,
    price: Annotated[str | None, typer.Option("--price", "-p", help=PriceHelp + " Loses time priority.")] = None,
    qty: Annotated[str | None, typer.Option("--qty", "-q", help="New open quantity (larger loses priority).")] = None,
    account: AccountOption = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Change a resting order's price or open quantity in place.

    Example: tradsys order amend my-bid-1 --price bid-2% --qty 0.02
    """
    if price is None and qty is None:
        raise CliError(EXIT_USAGE, "usage: give --price and/or --qty")
    client = Client()
    own = target.own_account(account)
    if price is not None and is_relative(price):
        found = by_ref(client, order_id, own, "GetOrder", pb.GetOrderRequest(order_id=order_id)).order
        order_id, price = found.order_id, resolve(client, found.symbol, price, buying=found.side == common.SIDE_BUY)
    request = pb.AmendOrderRequest(order_id=order_id, new_price=decimal_text(price, "--price"),
                                   new_open_qty=decimal_text(qty, "--qty"))
    order = to_dict(by_ref(client, order_id, own, "AmendOrder", request).order)
    if as_json:
        emit_json({"order": order})
    else:
        print_order(client, order, [], "amended")


def since_ns(since: str | None) -> int:
    if since is None:
        return 0
    try:
        seconds = parse_seconds(since.strip(), whole=True)
    except DurationError:
        seconds = 0.0
    if seconds <= 0:
        raise CliError(EXIT_USAGE, f"usage: --since must look like 30s, 15m, 1h, 7d or 2w, got {since!r}")
    return time.time_ns() - int(seconds * 1e9)


@order_app.command("list")
@handle_errors
def list_(
    status: Annotated[
        list[Status] | None, typer.Option("--status", help="open (new + partially filled) or a status; repeatable.")
    ] = None,
    symbol: SymbolOption = None,
    since: Annotated[str | None, typer.Option("--since", help="Only orders created in the last 30m, 1h, 7d, ...")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="At most this many (the newest).")] = 50,
    account: AccountOption = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """List orders, newest last, with the client ids you gave them.

    Example: tradsys order list --status open --symbol BTC-USD --since 1h
    """
    statuses = sorted({code for s in status or () for code in STATUSES[s]})
    client = Client()
    request = pb.ListOrdersRequest(account=target.own_account(account) or "", symbol=(symbol or "").upper(),
                                   statuses=statuses, since_ns=since_ns(since), page_size=limit)
    # the daemon pages newest first (its proto comment says ascending): take one page, show it oldest first
    reply = client.call(client.orders.ListOrders, request)
    orders = sorted((to_dict(o) for o in reply.orders), key=lambda o: (o["created_ns"], o["order_id"].zfill(24)))
    if as_json:
        emit_json({"orders": orders})
    elif not orders:
        console.print("no orders")
    else:
        console.print(order_table(client, orders))


@order_app.command()
@handle_errors
def show(
    order_id: OrderRef,
    account: AccountOption = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Show one order with its fills.

    Example: tradsys order show my-bid-1
    """
    client = Client()
    order = to_dict(by_ref(client, order_id, target.own_account(account), "GetOrder",
                           pb.GetOrderRequest(order_id=order_id)).order)
    order_id = order["order_id"]
    fills = [to_dict(f) for f in client.call(client.orders.ListFills,
                                             pb.ListFillsRequest(order_id=order_id, account=order["account"],
                                                                 page_size=1000)).fills]
    if as_json:
        emit_json({"order": order, "fills": fills})
    else:
        print_order(client, order, fills, "order")
