"""Prices as the venue sees them: each instrument's tick (what a table rounds to), and limit prices
relative to the book (`--price bid-1%`), so an example or a script states where an order should rest
instead of a number that the market has long left behind.

`bid`, `ask` or `mid`, optionally followed by `+` or `-` and an amount in the quote currency (`bid-50`)
or a percentage (`ask+0.5%`). The result is rounded to the instrument's tick away from the touch
for a buy (down) and for a sell (up), so rounding never makes an order more aggressive.
"""

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from typing import Any

from tradsys.cli.client import EXIT_FAILED, EXIT_USAGE, Client, CliError

RELATIVE = re.compile(r"^(bid|ask|mid)(?:([+-])(\d+(?:\.\d+)?)(%?))?$", re.IGNORECASE)


def _md() -> Any:
    """The market data messages, imported when a command first needs them (an order command mostly does not)."""
    from tradsys.proto import marketdata_pb2

    return marketdata_pb2


def steps(client: Client) -> dict[str, tuple[str, str]]:
    """Each symbol's (tick size, lot size): the precision a table shows its prices and quantities in."""
    listed = client.call(client.market.ListInstruments, _md().ListInstrumentsRequest()).instruments
    return {i.symbol: (i.tick_size, i.lot_size) for i in listed}


def is_relative(text: str | None) -> bool:
    return text is not None and RELATIVE.match(text.strip()) is not None


def resolve(client: Client, symbol: str, text: str, buying: bool) -> str:
    """The price `text` names on `symbol`'s book now, as a decimal string on the tick."""
    found = RELATIVE.match(text.strip())
    if found is None:
        raise CliError(EXIT_USAGE, f"usage: --price must be a number or bid/ask/mid with an offset such as "
                                   f"bid-1% or ask+50, got {text!r}")
    anchor, sign, amount, percent = found.groups()
    book = client.call(client.market.GetBook, _md().GetBookRequest(symbol=symbol, depth=1)).book
    if not book.bids or not book.asks:
        raise CliError(EXIT_FAILED, f"error: {symbol} has no {'bids' if not book.bids else 'asks'} to price "
                                    f"{text!r} from; give a number")
    bid, ask = Decimal(book.bids[0].price), Decimal(book.asks[0].price)
    price = {"bid": bid, "ask": ask, "mid": (bid + ask) / 2}[anchor.lower()]
    if amount is not None:
        offset = price * Decimal(amount) / 100 if percent else Decimal(amount)
        price = price + offset if sign == "+" else price - offset
    tick = Decimal(steps(client).get(symbol, ("0.01", ""))[0])
    ticks = (price / tick).to_integral_value(ROUND_FLOOR if buying else ROUND_CEILING)
    if ticks <= 0:
        raise CliError(EXIT_USAGE, f"usage: --price {text} comes to {price}, not a positive price")
    return str((ticks * tick).quantize(tick))
