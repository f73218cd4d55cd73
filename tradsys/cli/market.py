"""`tradsys market list`, `tradsys book`, `tradsys trades`, `tradsys bars`: public market data."""

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Annotated, Any

import typer
from google.protobuf.message import Message
from rich.table import Table
from rich.text import Text

from tradsys.cli.client import Client
from tradsys.cli.complete import symbols
from tradsys.cli.output import JsonOption, coloured, console, emit_json, handle_errors, side_style, table, to_dict, when
from tradsys.proto import marketdata_pb2 as md

market_app = typer.Typer(help="Instruments and market data.", no_args_is_help=True)

SymbolArgument = Annotated[str, typer.Argument(help="Instrument, e.g. BTC-USD.", autocompletion=symbols)]
INTERVALS = ("1s", "1m", "5m", "15m", "1h", "1d")


def fetch(rpc: str, request: Message) -> Any:
    """The reply of one call to the daemon's MarketData service."""
    client = Client()
    return client.call(getattr(client.market, rpc), request)


def show_rows(name: str, rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str],
              cells: Callable[[dict[str, Any]], list[Any]], right: Sequence[str]) -> None:
    """`{name: rows}` as JSON, or a table of `cells(row)` (right-aligning `right`), or "no NAME yet"."""
    if as_json:
        emit_json({name: rows})
    elif not rows:
        console.print(f"no {name} yet")
    else:
        console.print(table(None, columns, [cells(row) for row in rows], right))


@market_app.command("list")
@handle_errors
def list_(as_json: Annotated[bool, JsonOption] = False) -> None:
    """List the instruments the venue trades, with their tick and lot sizes.

    Example: tradsys market list
    """
    rows = [to_dict(i) for i in fetch("ListInstruments", md.ListInstrumentsRequest()).instruments]
    if as_json:
        emit_json({"instruments": rows})
        return
    columns = ["symbol", "base", "quote", "tick", "lot", "min qty", "max qty", "status"]
    console.print(table(None, columns, [
        [i["symbol"], i["base"], i["quote"], i["tick_size"], i["lot_size"], i["min_qty"], i["max_qty"],
         coloured(i["status"] or "", "green" if i["status"] == "trading" else "red")]
        for i in rows
    ], ["tick", "lot", "min qty", "max qty"]))


def ladder(book: dict[str, Any], depth: int, width: int = 24) -> Table:
    """Asks above (best lowest, nearest the middle), the spread, bids below, sizes as bars."""
    asks = book["asks"][:depth]
    bids = book["bids"][:depth]
    sizes = [Decimal(level["qty"]) for level in asks + bids]
    biggest = max(sizes, default=Decimal(1)) or Decimal(1)
    out = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    out.add_column("orders", justify="right")
    out.add_column("price", justify="right")
    out.add_column("qty", justify="right")
    out.add_column("depth", no_wrap=True)

    def bar(qty: str, style: str) -> Text:
        cells = int(Decimal(qty) / biggest * width) if biggest else 0
        return Text("█" * max(cells, 1), style=style)

    for level in reversed(asks):
        out.add_row(str(level["order_count"]), Text(level["price"], style="red"), level["qty"], bar(level["qty"], "red"))
    out.add_row("", "", "", Text(spread_text(book), style="bold"))
    for level in bids:
        out.add_row(str(level["order_count"]), Text(level["price"], style="green"), level["qty"],
                    bar(level["qty"], "green"))
    return out


def spread_text(book: dict[str, Any]) -> str:
    if not book["bids"] or not book["asks"]:
        return "spread —"
    bid, ask = Decimal(book["bids"][0]["price"]), Decimal(book["asks"][0]["price"])
    mid = (bid + ask) / 2
    bps = (ask - bid) / mid * 10000 if mid else Decimal(0)
    return f"spread {ask - bid} ({bps:.1f} bps)"


@handle_errors
def book(
    symbol: SymbolArgument,
    depth: Annotated[int, typer.Option("--depth", "-d", min=1, max=500, help="Levels per side.")] = 10,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Show the order book: asks over bids, aggregated by price.

    Example: tradsys book BTC-USD --depth 5
    """
    snapshot = to_dict(fetch("GetBook", md.GetBookRequest(symbol=symbol.upper(), depth=depth)).book)
    if as_json:
        emit_json(snapshot)
        return
    console.print(f"[bold]{snapshot['symbol']}[/] book (seq {snapshot['seq']})")
    console.print(ladder(snapshot, depth))


@handle_errors
def trades(
    symbol: SymbolArgument,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many recent trades.")] = 20,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Recent public trades, newest last; the side is the aggressor's.

    Example: tradsys trades ETH-USD --limit 50
    """
    rows = [to_dict(t) for t in fetch("GetTrades", md.GetTradesRequest(symbol=symbol.upper(), limit=limit)).trades]
    show_rows("trades", rows, as_json, ["time", "id", "side", "price", "qty"], lambda t: [
        when(t["ts_ns"]), t["trade_id"], coloured(t["taker_side"] or "", side_style(t["taker_side"])),
        coloured(t["price"], side_style(t["taker_side"])), t["qty"],
    ], ["price", "qty"])


@handle_errors
def bars(
    symbol: SymbolArgument,
    interval: Annotated[str, typer.Option("--interval", "-i", help=f"Bar width: {', '.join(INTERVALS)}.")] = "1m",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=2000, help="How many recent bars.")] = 20,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """OHLCV bars, oldest first; the last one may still be open.

    Example: tradsys bars BTC-USD --interval 1m --limit 30
    """
    if interval not in INTERVALS:
        raise typer.BadParameter(f"must be one of {', '.join(INTERVALS)}", param_hint="--interval")
    request = md.GetBarsRequest(symbol=symbol.upper(), interval=interval, limit=limit)
    rows = [to_dict(b) for b in fetch("GetBars", request).bars]
    show_rows("bars", rows, as_json, ["start", "open", "high", "low", "close", "volume", "trades", ""], lambda b: [
        when(b["start_ns"]), b["open"], b["high"], b["low"],
        coloured(b["close"], "green" if Decimal(b["close"]) >= Decimal(b["open"]) else "red"), b["volume"],
        b["trade_count"], "" if b["closed"] else "open",
    ], ["open", "high", "low", "close", "volume", "trades"])
