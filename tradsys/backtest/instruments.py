"""The instruments of a backtest: the venue's own, and for any other symbol in the data (BTC-USDT,
ETH-BTC) a tick and lot from the flags or from the data.

From the data: the tick is 10^-d for the fewest decimals d (at most 8) that write every price
exactly, but never coarser than 0.01; prices that need more than 8 decimals (floats from a
computation) get a tick of about five significant digits of the median price instead. The lot
is likewise read from the volumes (bars) or sizes (trades), never coarser than 0.001. The engine
counts cash in 1e-8 units, so tick x lot must be at least 1e-8: a very fine tick makes the lot
coarser (a tick of 1e-8 gives a lot of 1).

The capital is in the quote currency; a run over symbols quoted in different currencies is refused.
"""

from __future__ import annotations

import math
from decimal import Decimal

import polars as pl

from tradsys.data import DataError, MarketData
from tradsys.engine import DEFAULT_INSTRUMENTS, Instrument

MAX_DECIMALS = 8
COARSEST_TICK = 2
COARSEST_LOT = 3
"""Decimals: the defaults for instruments the venue does not list (0.01 and 0.001)."""


def backtest_instruments(data: MarketData, frame: pl.DataFrame, tick_size: str | None,
                         lot_size: str | None) -> list[Instrument]:
    """The venue's instruments plus one for each other symbol of the data (see the module doc)."""
    known = {i.symbol: i for i in DEFAULT_INSTRUMENTS}
    for symbol in data.symbols:
        if symbol in known and tick_size is None and lot_size is None:
            continue
        base, _, quote = symbol.partition("-")
        if not quote:
            base, quote = symbol, "USD"
        rows = frame.filter(pl.col("symbol") == symbol) if len(data.symbols) > 1 else frame
        tick_d, lot_d = increments(rows, data.kind)
        tick = Decimal(tick_size) if tick_size is not None else Decimal(1).scaleb(-tick_d)
        lot = Decimal(lot_size) if lot_size is not None else Decimal(1).scaleb(-min(lot_d, MAX_DECIMALS - tick_d))
        try:
            known[symbol] = Instrument(symbol, base, quote, tick, lot, min_qty=1, max_qty=10**15)
        except ValueError as exc:
            raise DataError(f"{symbol}: tick {tick} and lot {lot}: {exc} (--tick-size, --lot-size)") from None
    return list(known.values())


def quote_currency(instruments: list[Instrument], symbols: tuple[str, ...]) -> str:
    """The one quote currency of `symbols`, which the capital is in."""
    by_symbol = {i.symbol: i for i in instruments}
    quotes = sorted({by_symbol[s].quote for s in symbols})
    if len(quotes) != 1:
        raise DataError(f"the data's symbols are quoted in {', '.join(quotes)}; the capital is in one quote "
                        "currency: run one at a time (--symbol)")
    return quotes[0]


def increments(frame: pl.DataFrame, kind: str) -> tuple[int, int]:
    """(tick decimals, lot decimals) read from the prices and sizes of `frame`."""
    prices = ("open", "high", "low", "close") if kind == "bars" else ("price",)
    price = pl.concat([frame.get_column(c) for c in prices]).drop_nulls()
    size = frame.get_column("volume" if kind == "bars" else "qty").drop_nulls()
    tick_d = _decimals(price)
    if tick_d is None:
        median = float(price.median() or 1.0)  # type: ignore[arg-type]
        tick_d = min(MAX_DECIMALS, 4 - math.floor(math.log10(median)))
    lot_d = _decimals(size)
    return max(COARSEST_TICK, tick_d), max(COARSEST_LOT, lot_d if lot_d is not None else COARSEST_LOT)


def _decimals(values: pl.Series) -> int | None:
    """The fewest decimals that write every value exactly, or None when more than MAX_DECIMALS would."""
    if values.len() == 0:
        return 0
    for d in range(MAX_DECIMALS + 1):
        scaled = values * 10**d
        if ((scaled - scaled.round(0)).abs() <= (scaled.abs() * 1e-12).clip(lower_bound=1e-6)).all():  # float64 error
            return d
    return None
