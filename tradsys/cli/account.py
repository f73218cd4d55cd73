"""`tradsys fills` and `tradsys positions`: what an account traded and holds."""

from typing import Annotated

import typer

from tradsys.cli.client import Client, target
from tradsys.cli.order import FILL_COLUMNS, FILL_OPTIONAL, FILL_RIGHT, AccountOption, SymbolOption, fill_rows, since_ns
from tradsys.cli.output import JsonOption, console, emit_json, handle_errors, pnl, rounded, table, to_dict
from tradsys.cli.prices import steps
from tradsys.proto import orders_pb2 as pb

CENTS = "0.01"
"""Money in tables: quote-currency amounts to the cent (`--json` keeps every digit)."""


@handle_errors
def fills(
    symbol: SymbolOption = None,
    order_id: Annotated[str | None, typer.Option("--order", help="Only fills of this order.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only fills in the last 30m, 1h, 7d, ...")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="At most this many (the newest).")] = 50,
    account: AccountOption = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """List fills (executions), newest last.

    Example: tradsys fills --symbol BTC-USD --since 1h
    """
    client = Client()
    request = pb.ListFillsRequest(account=target.own_account(account) or "", symbol=(symbol or "").upper(),
                                  order_id=order_id or "", since_ns=since_ns(since), page_size=limit)
    rows = [to_dict(f) for f in client.call(client.orders.ListFills, request).fills]
    rows.sort(key=lambda f: (f["ts_ns"], f["fill_id"]))
    if as_json:
        emit_json({"fills": rows})
    elif not rows:
        console.print("no fills")
    else:
        console.print(table(None, FILL_COLUMNS, fill_rows(rows), FILL_RIGHT, FILL_OPTIONAL))


@handle_errors
def positions(
    account: AccountOption = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Positions with average price, realized and unrealized PnL, marked at the last price.

    Example: tradsys positions --account a1
    """
    client = Client()
    request = pb.GetPositionsRequest(account=target.own_account(account) or "")
    rows = [to_dict(p) for p in client.call(client.orders.GetPositions, request).positions]
    if as_json:
        emit_json({"positions": rows})
        return
    if not rows:
        console.print("no positions")
        return
    ticks = {symbol: tick for symbol, (tick, _lot) in steps(client).items()}
    columns = ["account", "symbol", "qty", "avg price", "mark", "unrealized", "realized", "fees"]
    console.print(table(None, columns, [position_row(p, ticks.get(p["symbol"], "")) for p in rows],
                        columns[2:], optional=["fees", "mark", "account"]))


def position_row(p: dict[str, str], tick: str) -> list[str]:
    """A position as a table shows it: prices to the tick, money to the cent."""
    return [p["account"], p["symbol"], p["qty"], rounded(p["avg_price"], tick),
            rounded(p["mark_price"], tick), pnl(rounded(p["unrealized_pnl"], CENTS)),
            pnl(rounded(p["realized_pnl"], CENTS)), rounded(p["fees"], CENTS)]
