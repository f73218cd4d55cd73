"""Market data files as other tools write them, scanned lazily into columns `tradsys.data` recognises.

- parquet, CSV (with a header), Arrow IPC (`.feather`, `.arrow`, `.ipc`: freqtrade's default);
- freqtrade `.json` / `.json.gz`: a list of [ms, open, high, low, close, volume];
- Binance public data CSVs (data.binance.vision) without a header row, told apart by their
  column count: 12 klines (open time in ms, or us from 2025), 7 trades, 8 aggTrades; their
  `is_buyer_maker` becomes the taker side;
- a directory or a glob of such files (monthly or daily downloads): each file is one piece,
  which `tradsys.data` normalises on its own (a directory may mix ms and us files) and then
  concatenates in time order.

A file without a symbol column names its symbol: freqtrade's `BTC_USDT-1m.feather` and
`BTC_USDT_USDT-1h-futures.feather` give BTC-USDT, Binance's `BTCUSDT-1m-2024-01.csv` gives
BTC-USDT when it ends in a known quote currency.
"""

from __future__ import annotations

import glob
import gzip
import json
import re
from pathlib import Path

import polars as pl

__all__ = ["scan_pieces", "symbol_from_name", "SUFFIXES"]

BINANCE_KLINES = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
                  "taker_buy_volume", "taker_buy_quote_volume", "ignore")
BINANCE_TRADES = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
BINANCE_AGG_TRADES = ("agg_trade_id", "price", "qty", "first_trade_id", "last_trade_id", "time", "is_buyer_maker",
                      "is_best_match")
HEADERLESS = {len(c): c for c in (BINANCE_KLINES, BINANCE_TRADES, BINANCE_AGG_TRADES)}
FREQTRADE_JSON = ("date", "open", "high", "low", "close", "volume")
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "USD", "EUR", "GBP", "TRY", "BRL", "JPY",
          "BTC", "ETH", "BNB")
"""Quote currencies that split a Binance symbol (BTCUSDT) into base and quote; longest match first."""
SUFFIXES = (".parquet", ".pq", ".csv", ".txt", ".tsv", ".feather", ".arrow", ".ipc", ".json", ".json.gz")
FREQTRADE_NAME = re.compile(r"^([A-Za-z0-9]+)_([A-Za-z0-9]+)(?:_[A-Za-z0-9]+)?-(?:\d+[smhdwMy]|trades)\b")
BINANCE_NAME = re.compile(r"^([A-Z0-9]+)-(?:\d+[smhdwMy]|trades|aggTrades)-\d{4}-\d{2}")


class FileError(ValueError):
    """A path that names no readable market data; `tradsys.data` turns it into a DataError."""


def scan_pieces(path: Path | str) -> list[tuple[str, pl.LazyFrame]]:
    """(file name, lazy frame) for each file `path` names: a file, a directory or a glob."""
    text = str(path)
    if any(ch in text for ch in "*?[") and not Path(text).exists():
        files = sorted(Path(p) for p in glob.glob(text) if _known(Path(p)))
        if not files:
            raise FileError(f"{Path(text).name}: no data files match {text}")
    else:
        p = Path(text)
        if not p.exists():
            raise FileError(f"{p.name}: no such file ({p})")
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and _known(f))
            if not files:
                raise FileError(f"{p.name}: no data files in the directory (looked for {', '.join(SUFFIXES)})")
        else:
            files = [p]
    return [(f.name, _scan_file(f)) for f in files]


def symbol_from_name(name: str) -> str | None:
    """BTC-USDT from freqtrade's `BTC_USDT-1m.feather` or Binance's `BTCUSDT-1m-2024-01.csv`; else None."""
    match = FREQTRADE_NAME.match(name)
    if match:
        return f"{match.group(1).upper()}-{match.group(2).upper()}"
    match = BINANCE_NAME.match(name)
    if match:
        pair = match.group(1)
        for quote in QUOTES:
            if pair.endswith(quote) and len(pair) > len(quote):
                return f"{pair[:-len(quote)]}-{quote}"
    return None


def _known(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def _scan_file(path: Path) -> pl.LazyFrame:
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pl.scan_parquet(path)
    if suffix in (".feather", ".arrow", ".ipc"):
        return pl.scan_ipc(path)
    if name.endswith((".json", ".json.gz")):
        return _freqtrade_json(path)
    if suffix in (".csv", ".txt", ".tsv"):
        return _csv(path, "\t" if suffix == ".tsv" else ",")
    raise FileError(f"{path.name}: unknown file type {suffix or '(none)'!r}; expected .parquet, .csv, "
                    ".feather or freqtrade .json")


def _csv(path: Path, separator: str) -> pl.LazyFrame:
    with path.open("rb") as f:
        first = f.readline().decode("utf-8", "replace").strip()
    fields = first.split(separator)
    headerless = bool(fields) and fields[0].strip().isdigit() and len(fields) in HEADERLESS
    if not headerless:
        return pl.scan_csv(path, separator=separator, infer_schema_length=10_000)
    names = HEADERLESS[len(fields)]
    lf = pl.scan_csv(path, separator=separator, has_header=False, new_columns=list(names),
                     schema_overrides={n: pl.String for n in ("is_buyer_maker", "is_best_match") if n in names})
    if "is_buyer_maker" in names:  # the buyer rested, so the seller took: a sell
        maker = pl.col("is_buyer_maker").str.to_lowercase() == "true"
        lf = lf.with_columns(pl.when(maker).then(pl.lit("sell")).otherwise(pl.lit("buy")).alias("side"))
    return lf


def _freqtrade_json(path: Path) -> pl.LazyFrame:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt") as f:
            rows = json.load(f)
    except (OSError, ValueError) as exc:
        raise FileError(f"{path.name}: cannot read JSON: {exc}") from exc
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) >= 5 for r in rows):
        raise FileError(f"{path.name}: expected freqtrade candles, a list of [ms, open, high, low, close, volume]")
    width = min(len(r) for r in rows) if rows else len(FREQTRADE_JSON)
    names = FREQTRADE_JSON[:width]
    frame = pl.DataFrame([r[:width] for r in rows], schema={n: pl.Float64 if n != "date" else pl.Int64 for n in names},
                         orient="row")
    return frame.lazy()
