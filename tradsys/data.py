"""Market data files: bars or trades from parquet/CSV, normalised for the simulated market and the backtester.

`load_market_data` scans a file lazily with polars, recognises its columns, checks it in one
aggregate pass and returns a `MarketData` whose `frame` is still lazy:

- bars:   ts, symbol, open, high, low, close, volume
- trades: ts, symbol, price, qty, side ("buy"/"sell" or null)

Column names are matched case-insensitively, with aliases:

| column | also accepted |
|---|---|
| ts | timestamp, time, datetime, date, open_time, t |
| symbol | ticker, instrument, pair, sym |
| price | px, trade_price, last |
| qty | size, amount, quantity, volume, vol, q (trades) |
| open, high, low, close | o, h, l, c |
| volume | vol, v, base_volume |
| side | taker_side, aggressor, aggressor_side |

A file with open, high, low and close is bars; otherwise a price column makes it trades.
`volume`/`qty`/`side` are optional (null when absent). A single-symbol file may lack a symbol
column: the symbol is then `symbol=` (the CLI's `--symbol`), else the one in a freqtrade or
Binance file name (`tradsys.data_files`); with a symbol column, `symbol=` selects that symbol.
Files in other tools' shapes (freqtrade, Binance public data, directories and globs of monthly
files) are read by `tradsys.data_files`, each file normalised on its own, then put in time order.

`ts` becomes Int64 nanoseconds since the epoch (UTC):
- datetime / date columns: their instant (naive values are UTC);
- strings: ISO-8601, with or without a zone (naive = UTC);
- numbers: the unit follows from the largest absolute value in the column, which is how
  epoch timestamps of any date after 1973 separate cleanly:
  < 1e11 seconds, < 1e14 milliseconds, < 1e17 microseconds, else nanoseconds.
  Fractional seconds (floats) are kept to the nanosecond float64 allows.

Rows are sorted by ts (stable) when the file is not already. Prices must be present, finite
and positive; a missing column or a bad value raises `DataError` naming the file and the column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from tradsys.data_files import FileError, scan_pieces, symbol_from_name
from tradsys.data_window import WindowError, parse_timerange, parse_timeframe, resample, restrict

__all__ = ["DataError", "MarketData", "load_market_data", "TS_UNIT_RULE"]

TS_UNIT_RULE = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3))
"""(bound, multiplier to ns): integer ts below each bound (by largest |value|) is s, ms, us; else ns."""

ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "time", "datetime", "date", "open_time", "t"),
    "symbol": ("symbol", "ticker", "instrument", "pair", "sym"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v", "base_volume"),
    "price": ("price", "px", "trade_price", "last"),
    "qty": ("qty", "size", "amount", "quantity", "q", "volume", "vol"),
    "side": ("side", "taker_side", "aggressor", "aggressor_side"),
}
BAR_PRICES = ("open", "high", "low", "close")
BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
TRADE_COLUMNS = ("ts", "symbol", "price", "qty", "side")
SIDE_MAP = {"buy": "buy", "b": "buy", "bid": "buy", "sell": "sell", "s": "sell", "ask": "sell", "offer": "sell"}

Source = str | Path | pl.DataFrame | pl.LazyFrame


class DataError(ValueError):
    """A market data file that cannot be used: unreadable, missing columns or bad values."""


@dataclass(frozen=True)
class MarketData:
    kind: Literal["bars", "trades"]
    frame: pl.LazyFrame
    """Normalised columns (see BAR_COLUMNS / TRADE_COLUMNS), ts Int64 ns, sorted by ts."""
    symbols: tuple[str, ...]
    """Symbols in order of first appearance."""
    name: str = "<frame>"
    rows: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    columns: dict[str, str] = field(default_factory=dict)
    """Normalised name -> the source column it came from."""

    def collect(self) -> pl.DataFrame:
        return self.frame.collect()

    @property
    def price_columns(self) -> tuple[str, ...]:
        return BAR_PRICES if self.kind == "bars" else ("price",)


def load_market_data(source: Source, symbol: str | None = None, timerange: str | None = None,
                     timeframe: str | None = None) -> MarketData:
    """Scan `source` (a path: file, directory or glob, see `tradsys.data_files`; or a DataFrame or
    LazyFrame) and normalise it; see the module doc. `timerange` and `timeframe` are
    `tradsys.data_window`'s: rows in a time range, resampled to bars of a timeframe."""
    try:
        window = parse_timerange(timerange) if timerange else (None, None)
        every = parse_timeframe(timeframe) if timeframe else None
    except WindowError as exc:
        raise DataError(str(exc)) from None
    name, pieces = _scan(source)
    if symbol is None and isinstance(source, (str, Path)):
        symbol_default = symbol_from_name(pieces[0][0])
    else:
        symbol_default = None
    parts = [_normalise(piece, lf, symbol, symbol_default) for piece, lf in pieces]
    kind, _, cols, has_symbol = parts[0]
    for (piece, _), part in zip(pieces, parts):
        if part[0] != kind:
            raise DataError(f"{name}: {pieces[0][0]} is {kind} but {piece} is {part[0]}; give files of one kind")
    frame = parts[0][1] if len(parts) == 1 else pl.concat([p[1] for p in parts], how="vertical")
    frame = restrict(frame, *window)
    if every is not None:
        frame = resample(frame, kind, every)
        kind = "bars"
    prices = BAR_PRICES if kind == "bars" else ("price",)
    empty = f"no rows for symbol {symbol!r}" if has_symbol and symbol is not None else "no rows"
    if timerange:
        empty += f" in --timerange {timerange}"
    stats = _check(name, frame, prices, empty)
    if not stats["sorted"]:
        frame = frame.sort("ts", maintain_order=True)
    symbols = tuple(stats["symbols"])
    return MarketData(kind, frame, symbols, name, stats["rows"], stats["start"], stats["end"], cols)


def _normalise(name: str, lf: pl.LazyFrame, symbol: str | None,
               symbol_default: str | None) -> tuple[Literal["bars", "trades"], pl.LazyFrame, dict[str, str], bool]:
    """One file's columns recognised and normalised: (kind, frame, columns used, has a symbol column)."""
    try:
        schema = lf.collect_schema()
    except Exception as exc:  # polars raises several types for unreadable files
        raise DataError(f"{name}: cannot read: {exc}") from exc
    lower: dict[str, str] = {}
    for col in schema.names():
        lower.setdefault(col.lower().strip(), col)
    have = ", ".join(schema.names()) or "no columns"

    def find(key: str, taken: frozenset[str] = frozenset()) -> str | None:
        for alias in ALIASES[key]:
            col = lower.get(alias)
            if col is not None and col not in taken:
                return col
        return None

    cols: dict[str, str] = {}
    ts_col = find("ts")
    if ts_col is None:
        raise DataError(f"{name}: no ts column (looked for {', '.join(ALIASES['ts'])}; have: {have})")
    cols["ts"] = ts_col
    bar_cols = {k: find(k) for k in BAR_PRICES}
    price_col = find("price")
    if all(bar_cols.values()):
        kind: Literal["bars", "trades"] = "bars"
        cols.update(bar_cols)  # type: ignore[arg-type]
        volume = find("volume")
        if volume is not None:
            cols["volume"] = volume
    elif price_col is not None:
        kind = "trades"
        cols["price"] = price_col
        qty = find("qty", frozenset({price_col}))
        if qty is not None:
            cols["qty"] = qty
        side = find("side")
        if side is not None:
            cols["side"] = side
    else:
        found = [k for k, v in bar_cols.items() if v]
        if found:
            missing = ", ".join(k for k, v in bar_cols.items() if not v)
            raise DataError(f"{name}: bars need open, high, low, close; missing {missing} (have: {have})")
        raise DataError(f"{name}: no price column for trades (have: {have}); bars need open, high, low, close")
    sym_col = find("symbol")
    fixed = symbol if symbol is not None else symbol_default
    if sym_col is None and fixed is None:
        raise DataError(f"{name}: no symbol column and none in the file name (have: {have}); "
                        "pass --symbol (symbol= in Python), e.g. --symbol BTC-USDT")
    if sym_col is not None:
        cols["symbol"] = sym_col

    exprs = [_ts_expr(name, ts_col, schema[ts_col]).alias("ts")]
    exprs.append(pl.col(sym_col).cast(pl.String).alias("symbol") if sym_col else pl.lit(fixed, pl.String).alias("symbol"))
    prices = BAR_PRICES if kind == "bars" else ("price",)
    for key in prices:
        exprs.append(_number(name, cols[key], schema[cols[key]]).alias(key))
    if kind == "bars":
        exprs.append(_number(name, cols["volume"], schema[cols["volume"]]).alias("volume") if "volume" in cols
                     else pl.lit(None, pl.Float64).alias("volume"))
    else:
        exprs.append(_number(name, cols["qty"], schema[cols["qty"]]).alias("qty") if "qty" in cols
                     else pl.lit(None, pl.Float64).alias("qty"))
        exprs.append(_side_expr(cols["side"], schema[cols["side"]]).alias("side") if "side" in cols
                     else pl.lit(None, pl.String).alias("side"))
    frame = lf.select(exprs)
    if sym_col is not None and symbol is not None:
        frame = frame.filter(pl.col("symbol") == symbol)
    return kind, frame, cols, sym_col is not None


# -- helpers --------------------------------------------------------------------------------


def _scan(source: Source) -> tuple[str, list[tuple[str, pl.LazyFrame]]]:
    if isinstance(source, pl.LazyFrame):
        return "<lazyframe>", [("<lazyframe>", source)]
    if isinstance(source, pl.DataFrame):
        return "<dataframe>", [("<dataframe>", source.lazy())]
    if not isinstance(source, (str, Path)):
        raise DataError(f"market data must be a path or a polars frame, got {type(source).__name__}")
    try:
        pieces = scan_pieces(source)
    except FileError as exc:
        raise DataError(str(exc)) from None
    if len(pieces) == 1:
        return pieces[0][0], pieces
    return f"{Path(source).name} ({len(pieces)} files)", pieces


def _ts_expr(name: str, col: str, dtype: pl.DataType) -> pl.Expr:
    c = pl.col(col)
    if dtype == pl.Date:
        return c.cast(pl.Datetime("ns")).dt.epoch("ns")
    if isinstance(dtype, pl.Datetime):
        return c.dt.epoch("ns")
    if dtype == pl.String:
        return c.str.strip_chars().str.to_datetime(time_unit="ns", time_zone="UTC").dt.epoch("ns")
    if dtype.is_numeric():
        biggest = c.cast(pl.Float64).abs().max()
        (b_s, s), (b_ms, ms), (b_us, us) = TS_UNIT_RULE

        def scaled(mult: int) -> pl.Expr:
            if not dtype.is_float():
                return c.cast(pl.Int64) * mult
            whole = c.floor()  # whole units exactly, then the fraction: no float64 rounding of the epoch part
            return whole.cast(pl.Int64) * mult + ((c - whole) * mult).round(0).cast(pl.Int64)

        return (
            pl.when(biggest < b_s).then(scaled(s))
            .when(biggest < b_ms).then(scaled(ms))
            .when(biggest < b_us).then(scaled(us))
            .otherwise(scaled(1))
        )
    raise DataError(f"{name}: ts column {col!r} has type {dtype}; expected integer epoch, datetime, date or ISO string")


def _number(name: str, col: str, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_numeric():
        return pl.col(col).cast(pl.Float64)
    if dtype == pl.String:
        return pl.col(col).str.strip_chars().cast(pl.Float64, strict=True)
    raise DataError(f"{name}: column {col!r} has type {dtype}; expected a number")


def _side_expr(col: str, dtype: pl.DataType) -> pl.Expr:
    c = pl.col(col)
    if dtype == pl.Boolean:  # true = buyer-initiated
        return pl.when(c).then(pl.lit("buy")).when(~c).then(pl.lit("sell")).otherwise(pl.lit(None, pl.String))
    text = c.cast(pl.String).str.strip_chars().str.to_lowercase()
    return text.replace_strict(SIDE_MAP, default=None, return_dtype=pl.String)


def _check(name: str, frame: pl.LazyFrame, prices: tuple[str, ...], empty: str) -> dict:
    """One aggregate pass: row count, time range, sortedness, symbols, null/bad values."""
    aggs = [
        pl.len().alias("rows"),
        pl.col("ts").min().alias("start"),
        pl.col("ts").max().alias("end"),
        pl.col("ts").null_count().alias("null_ts"),
        (pl.col("ts").diff().min().fill_null(0) >= 0).alias("sorted"),
        pl.col("symbol").null_count().alias("null_symbol"),
        pl.col("symbol").unique(maintain_order=True).drop_nulls().implode().alias("symbols"),
    ]
    for p in prices:
        aggs.append(pl.col(p).null_count().alias(f"null_{p}"))
        aggs.append((~pl.col(p).is_finite() | (pl.col(p) <= 0)).sum().alias(f"bad_{p}"))
    try:
        row = frame.select(aggs).collect().row(0, named=True)
    except Exception as exc:
        text = _first_line(exc)
        if "parse dates" in text or "strptime" in text or "datetime" in text:
            text = f"ts is not an ISO-8601 date/time ({text})"
        raise DataError(f"{name}: cannot read: {text}") from exc
    if row["rows"] == 0:
        raise DataError(f"{name}: {empty}")
    if row["null_ts"]:
        raise DataError(f"{name}: {_rows(row['null_ts'])} without ts")
    if row["null_symbol"]:
        raise DataError(f"{name}: {_rows(row['null_symbol'])} without symbol")
    for p in prices:
        if row[f"null_{p}"]:
            raise DataError(f"{name}: {_rows(row[f'null_{p}'])} without {p}")
        if row[f"bad_{p}"]:
            raise DataError(f"{name}: {_rows(row[f'bad_{p}'])} with a {p} that is not positive and finite")
    return row


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"
